"""The Kafka topics diarist uses, named from the configured prefix."""
from __future__ import annotations

from dataclasses import dataclass

from diarist.infra.settings import Settings
from diarist.infra.topics import TopicSpec
from diarist.streams.deadletters import RETENTION_DAYS


@dataclass(frozen=True)
class Topics:
    jobs_app: str  # Faust app id, and so the consumer group, of the jobs workers
    inference_app: str  # ... and of the inference workers
    callbacks_group: str  # consumer group of the callback senders (in the jobs worker processes)
    events: str  # lifecycle events, keyed by job id: the public contract
    media: str  # media events from external producers
    heartbeats: str  # inference workers' liveness and model
    jobs_changelog: str  # the jobs table (Faust names it after the app and the table)
    dead_letters: str  # values that a consumer could not decode or apply (streams/deadletters.py)


def topics(settings: Settings) -> Topics:
    ns = settings.namespace
    return Topics(jobs_app=ns, inference_app=f"{ns}-inference", events=f"{ns}.job-events",
                  media=f"{ns}.media", heartbeats=f"{ns}.inference-heartbeats",
                  jobs_changelog=f"{ns}-jobs-changelog", callbacks_group=f"{ns}-callbacks",
                  dead_letters=f"{ns}.dead-letters")


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
        # One partition: dead letters are few, and one partition reads back in the order they
        # came (a replay sends each back to its original topic under its original key, so
        # that topic's partitioning applies again).
        # Deleted after RETENTION_DAYS, never compacted: every copy is kept, keys repeat.
        TopicSpec(names.dead_letters, 1, config={
            "cleanup.policy": "delete", "retention.ms": str(RETENTION_DAYS * 24 * 3600 * 1000)}),
    ]
