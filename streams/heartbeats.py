"""Inference workers' heartbeats: sent by each of them, read by every edge for /healthz."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition

from diarist.streams.deadletters import DeadLetters, Source

HEARTBEAT_SCHEMA = "diarist.InferenceHeartbeat"
FRESH = timedelta(seconds=20)


class HeartbeatBoard:
    """The latest heartbeat of every inference worker. Reads outside any consumer group, so
    that every edge sees all of them."""

    def __init__(self, bootstrap: str, topic: str, dead_letters: DeadLetters) -> None:
        self.bootstrap = bootstrap
        self.tp = TopicPartition(topic, 0)
        self.dead_letters = dead_letters
        self.latest: dict[str, dict] = {}

    def live(self) -> list[dict]:
        now = datetime.now(UTC)
        return [beat for beat in self.latest.values() if now - beat["at"] < FRESH]

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([self.tp])
            while True:
                batches = await consumer.getmany(self.tp, timeout_ms=1000)
                for record in batches.get(self.tp, []):
                    # A beat older than FRESH says nothing about now: skipped unread, so that
                    # poison left in the compacted topic is not dead-lettered again by every
                    # edge that starts (its time is the producer's, as beat["at"] is).
                    if record.timestamp >= (datetime.now(UTC) - FRESH).timestamp() * 1000:
                        await self.dead_letters.handle("heartbeats", Source.of(record), self._take,
                                                       schemas=(HEARTBEAT_SCHEMA,))
        finally:
            await consumer.stop()

    def _take(self, name: str, beat: dict) -> None:
        self.latest[beat["worker"]] = beat
