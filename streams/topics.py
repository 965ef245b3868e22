"""The Kafka topics diarist uses, named from the configured prefix."""
from __future__ import annotations

from dataclasses import dataclass

from diarist.infra.topics import TopicSpec
from diarist.settings import Settings

JOBS_APP_ID = "diarist"
INFERENCE_APP_ID = "diarist-inference"


@dataclass(frozen=True)
class Topics:
    events: str  # lifecycle events, keyed by job id: the public contract
    media: str  # media events from external producers
    heartbeats: str  # inference workers' liveness and model
    jobs_changelog: str  # the jobs table (Faust names it after the app and the table)


def topics(settings: Settings) -> Topics:
    prefix = settings.topic_prefix
    return Topics(events=f"{prefix}.job-events", media=f"{prefix}.media",
                  heartbeats=f"{prefix}.inference-heartbeats",
                  jobs_changelog=f"{JOBS_APP_ID}-jobs-changelog")


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic, created up front: a topic auto-created with the wrong partition count
    breaks the co-partitioning of the jobs table with the events."""
    names = topics(settings)
    n = settings.partitions
    return [
        TopicSpec(names.events, n),
        TopicSpec(names.media, n),
        TopicSpec(names.heartbeats, 1, compacted=True, config={"segment.ms": "600000"}),
        TopicSpec(names.jobs_changelog, n, compacted=True),
    ]
