"""The Faust app both workers are built on, and how they read and write Avro on its topics."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import faust

from diarist.infra.settings import Settings
from diarist.schemas import SchemaError, codec

log = logging.getLogger(__name__)


def faust_app(app_id: str, settings: Settings) -> faust.App:
    return faust.App(
        app_id,
        broker=[f"kafka://{server.strip()}" for server in settings.bootstrap.split(",")],
        store="rocksdb://",
        datadir=str(settings.data_dir / "state"),
        topic_partitions=settings.partitions,
        # Topics are created by the project (infra.topics), never by whoever touches them first.
        topic_allow_declare=False,
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


async def decoded(stream: faust.types.StreamT) -> AsyncIterator[tuple[str, dict]]:
    """The (schema name, record) of each value; a value that is not one is logged and skipped."""
    async for value in stream:
        try:
            yield codec().decode(value)
        except SchemaError as exc:
            log.warning("skipping a message that is not diarist Avro: %s", exc)
