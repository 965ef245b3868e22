"""Following one job through the events topic, outside any consumer group.

An inference worker does not own the jobs table, yet it must know whether its own events took,
and whether someone stopped the job it runs. It reads the job's partition from the offset of
the event that queued the job, folding that job's events as they come.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaTimeoutError

from diarist.schemas import codec
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.store import Watchers

# Reading one partition up to date takes well under a second; a minute means the cluster is not
# answering (a leader moving, a broker down), and whoever opened the tail tries again later.
CATCH_UP_SECONDS = 60.0


class JobTail:
    def __init__(self, bootstrap: str, topic: str, partition: int, offset: int, job: lc.Job) -> None:
        self.tp = TopicPartition(topic, partition)
        self.offset = offset
        self.job = job
        self.watchers = Watchers()
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                          group_id=None, auto_offset_reset="earliest")
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> JobTail:
        try:
            async with asyncio.timeout(CATCH_UP_SECONDS):
                await self._consumer.start()
                self._consumer.assign([self.tp])
                self._consumer.seek(self.tp, self.offset)
                end = (await self._consumer.end_offsets([self.tp]))[self.tp]
                # Catch up with everything written so far before anyone decides on this job.
                while await self._consumer.position(self.tp) < end:
                    await self._poll()
        except BaseException as exc:
            # `async with` calls no __aexit__ when entering fails: a consumer left started here
            # would go on asking the cluster for metadata for as long as the process lives.
            await self._consumer.stop()
            if isinstance(exc, TimeoutError):
                raise KafkaTimeoutError(f"{self.tp} not read up to date in {CATCH_UP_SECONDS:.0f} s") from None
            raise
        self._task = asyncio.create_task(self._follow())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    def get(self, job_id: str) -> lc.Job:
        return self.job

    async def wait_for(self, job_id: str, predicate: Callable[[lc.Job | None], bool],
                       timeout: float = 10.0) -> lc.Job | None:
        return await self.watchers.wait_for(lambda: self.job, job_id, predicate, timeout)

    async def _follow(self) -> None:
        while True:
            await self._poll()

    async def _poll(self) -> None:
        batches = await self._consumer.getmany(self.tp, timeout_ms=200)
        key = self.job["id"].encode()
        for record in batches.get(self.tp, []):
            if record.key != key:
                continue
            try:
                name, event = codec().decode(record.value)
                job = lc.fold(self.job, name, event) if name in lc.LIFECYCLE_EVENTS else self.job
            except Exception:
                # Poison: the consumer groups' agents dead-letter it; a tail only reads past it.
                continue
            self.job = job
            self.watchers.changed(self.job["id"])
