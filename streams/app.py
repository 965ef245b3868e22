"""The Faust app both workers are built on, configured from Settings."""
from __future__ import annotations

import faust

from diarist.settings import Settings


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
