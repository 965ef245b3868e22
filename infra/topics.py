"""Create the project's Kafka topics up front, with the partition counts and policies they need."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

_log = logging.getLogger(__name__)


class TopicError(RuntimeError):
    """A topic could not be created, or exists in a shape the project cannot use."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False  # cleanup.policy=compact (changelogs, latest-state topics)
    config: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"topic {self.name!r}: partitions must be >= 1, got {self.partitions}")
        policy = self.config.get("cleanup.policy")
        if self.compacted and policy is not None and "compact" not in policy.split(","):
            raise ValueError(f"topic {self.name!r}: compacted=True contradicts cleanup.policy={policy}")

    def topic_config(self) -> dict[str, str]:
        cfg = dict(self.config)
        if self.compacted:
            cfg.setdefault("cleanup.policy", "compact")
        return cfg


def _mismatches(md: ClusterMetadata, specs: dict[str, TopicSpec]) -> list[str]:
    return [
        f"{name} has {len(md.topics[name].partitions)} partitions, expected {spec.partitions}"
        for name, spec in specs.items()
        if name in md.topics and md.topics[name].error is None
        and len(md.topics[name].partitions) not in (0, spec.partitions)
    ]


def _raise_on_mismatch(md: ClusterMetadata, specs: dict[str, TopicSpec]) -> None:
    if bad := _mismatches(md, specs):
        # Faust tables map keys to partitions by count; a different count silently scatters state.
        raise TopicError("existing topics do not match their specs: " + "; ".join(bad))


def _warn_on_replicas(md: ClusterMetadata, specs: dict[str, TopicSpec], rf: int) -> None:
    for name in specs:
        topic = md.topics.get(name)
        if topic is None or topic.error is not None or not topic.partitions:
            continue
        have = {len(p.replicas) for p in topic.partitions.values()}
        if have != {rf}:
            # Changing it is a partition reassignment, an operator's decision: never done here.
            _log.warning("topic %s has %s replicas, not the %d asked for", name,
                         "/".join(map(str, sorted(have))), rf)


def _ready(md: ClusterMetadata, spec: TopicSpec) -> bool:
    t = md.topics.get(spec.name)
    return (t is not None and t.error is None and len(t.partitions) == spec.partitions
            and all(p.leader >= 0 for p in t.partitions.values()))


def default_min_insync(replication_factor: int) -> int:
    """2 of 3 (or more) replicas, so that a write acknowledged by acks=all survives losing a
    broker and the topic takes writes with one broker down; 1 below three replicas."""
    return 2 if replication_factor >= 3 else 1


def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec], timeout: float = 30.0,
                  replication_factor: int | None = None, min_insync_replicas: int | None = None) -> None:
    """Create the missing topics of `specs` and wait until every one of them has leaders.

    Existing topics are left alone, but one whose partition count differs from its spec is an
    error (a replication factor other than the one asked for is logged). New topics get
    `replication_factor` replicas (None: min(3, brokers in the cluster), 1 for the embedded
    broker), and `min.insync.replicas` = `min_insync_replicas` (None: default_min_insync) unless
    the spec sets it.
    """
    wanted: dict[str, TopicSpec] = {}
    for spec in specs:
        if wanted.setdefault(spec.name, spec) != spec:
            raise ValueError(f"conflicting specs for topic {spec.name!r}")
    if not wanted:
        return
    deadline = time.monotonic() + timeout
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "logger": _log})
    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise TopicError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from exc
    _raise_on_mismatch(md, wanted)

    rf = min(3, len(md.brokers)) if replication_factor is None else replication_factor
    min_isr = default_min_insync(rf) if min_insync_replicas is None else min_insync_replicas
    if rf < 1 or not 1 <= min_isr <= rf:
        raise TopicError(f"replication factor {rf} with min.insync.replicas {min_isr}: need 1 <= min.insync <= replicas")
    if replication_factor is not None:
        _warn_on_replicas(md, wanted, rf)
    missing = [spec for name, spec in wanted.items() if name not in md.topics or md.topics[name].error is not None]
    if missing:
        if rf > len(md.brokers):
            raise TopicError(f"replication factor {rf} needs {rf} brokers; {bootstrap_servers} has "
                             f"{len(md.brokers)} up (DIARIST_REPLICATION_FACTOR)")
        new = [NewTopic(s.name, s.partitions, rf, config={"min.insync.replicas": str(min_isr), **s.topic_config()})
               for s in missing]
        futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
        for name, fut in futures.items():
            try:
                fut.result(timeout=max(deadline - time.monotonic(), 1.0))
                _log.info("created topic %s", name)
            except TimeoutError as exc:
                raise TopicError(f"creating topic {name} timed out after {timeout:.0f} s") from exc
            except KafkaException as exc:
                # Someone else created it in the meantime; its shape is checked below.
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TopicError(f"creating topic {name} failed: {exc.args[0].str()}") from exc

    # Created topics show up in metadata (and get leaders) a moment after the create call returns.
    pending = list(wanted)
    while True:
        try:
            md = admin.list_topics(timeout=max(deadline - time.monotonic(), 1.0))
        except KafkaException:
            pass  # a transient metadata failure; retried until the deadline
        else:
            _raise_on_mismatch(md, wanted)
            pending = [name for name, spec in wanted.items() if not _ready(md, spec)]
            if not pending:
                return
        if time.monotonic() >= deadline:
            raise TopicError(f"topics without leaders after {timeout:.0f} s: {', '.join(pending)}")
        time.sleep(0.1)
