"""The Faust app both workers are built on, and how they read and write Avro on its topics."""
from __future__ import annotations

import faust

from diarist.infra.settings import Settings
from diarist.schemas import codec
from diarist.streams.deadletters import DeadLetters, Headers


def faust_app(app_id: str, settings: Settings) -> faust.App:
    return faust.App(
        app_id,
        broker=[f"kafka://{server.strip()}" for server in settings.bootstrap.split(",")],
        store="rocksdb://",
        datadir=str(settings.data_dir / "state"),
        topic_partitions=settings.partitions,
        # Topics are created by the project (infra.topics), never by whoever touches them first.
        topic_allow_declare=False,
        # What Faust would give a topic of its own; it declares none (above), and infra/topics.py
        # gives the project's DIARIST_REPLICATION_FACTOR replicas.
        topic_replication_factor=settings.replication_factor or 1,
        # No agent or timer runs on the leader only, so no leader election: without this, Faust
        # subscribes every worker to an `<id>-__assignor-__leader` topic that nobody creates.
        topic_disable_leader=True,
        web_enabled=False,
        # Faust tells every worker where each partition's owner is by this URL: the edge's.
        canonical_url=settings.advertised_url,
        autodiscover=False,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # A rebalance must not wait for a transcription that takes minutes to finish.
        stream_wait_empty=False,
    )


async def publish(topic: faust.types.TopicT, name: str, event: dict) -> None:
    """Sends a lifecycle event keyed by its job; returns once the broker acknowledged it."""
    sent = await topic.send(key=event["job_id"].encode(), value=codec().encode(name, event))
    await sent



def dead_letters(app: faust.App, topic: str) -> DeadLetters:
    """The process's poison handling (streams/deadletters.py), sending through this app's
    producer to the dead-letter topic; consumers outside Faust (callbacks, heartbeats) in the
    same process use it too."""
    dead_letter_topic = app.topic(topic, key_serializer="raw", value_serializer="raw")

    async def send(key: bytes | None, value: bytes | None, headers: Headers) -> None:
        sent = await dead_letter_topic.send(key=key, value=value, headers=headers)
        await sent

    return DeadLetters(send)
