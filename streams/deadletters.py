"""Poison messages: values on diarist's topics that cannot be decoded or applied.

Every consumer of a topic (the fold-events, admit-media and run-jobs agents, the callbacks
consumer, the heartbeat board) takes each value through `DeadLetters.handle`: it decodes the
value and applies it. A value that raises on the way is poison. It is logged once (one warning
line: topic, partition, offset, agent and reason), copied to `<namespace>.dead-letters` (the
original key and bytes, the original headers, and the `diarist-dlq-*` headers below), counted,
and skipped: no agent dies of input.

What is poison:
- decode: the codec raised (not the Confluent wire format, an unknown schema id, a body that is
  not Avro of that schema: SchemaError, EOFError, ValueError, struct errors ... all of them);
- schema: a diarist message of a schema this agent does not take (a MediaSubmitted on the
  events topic); only agents that own their topic's shape say which schemas they take;
- apply: decoded, but applying it raised (the fold, the job store or the agent's own handling).

What is not poison:
- an event the fold refuses (an illegal transition, a replay): the fold returns without
  raising, so nothing here sees it; refusals are normal and stay silent;
- a failure of the machinery rather than of the message (`NOT_POISON`: Kafka errors, lost
  connections, timeouts): it propagates, as any crash did before, and the value is not
  dead-lettered (a Faust agent restarts; the callbacks consumer logs it and goes on).

Each consumer dead-letters what it skipped under its own agent name, so a value that several
consumers read (the events topic is read by fold-events, run-jobs and callbacks) may be copied
once per consumer; (topic, partition, offset) names the original.
"""
from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
from aiokafka.errors import KafkaError

from diarist.schemas import codec

log = logging.getLogger(__name__)

# Headers of a dead letter (the original headers come along, less any diarist-dlq-* of their own).
PREFIX = "diarist-dlq-"
REASON = "diarist-dlq-reason"
TOPIC = "diarist-dlq-topic"
PARTITION = "diarist-dlq-partition"
OFFSET = "diarist-dlq-offset"
AGENT = "diarist-dlq-agent"

RETENTION_DAYS = 14
REASON_CHARS = 1000  # a reason longer than this is cut (a header is not a log file)

Headers = list[tuple[str, bytes]]
# Sends (key, value, headers) to the dead-letter topic; returns once the broker acknowledged it.
Send = Callable[[bytes | None, bytes | None, Headers], Awaitable[None]]
# Applies a decoded (schema name, record); may be a plain function or a coroutine function.
Apply = Callable[[str, Any], Awaitable[object] | object]


class Kind(StrEnum):
    DECODE = "decode"
    SCHEMA = "schema"
    APPLY = "apply"


# Failures of the machinery, not of the message (Kafka, a lost connection, a peer's edge that
# does not answer, a timeout): they propagate and nothing is dead-lettered.
NOT_POISON: tuple[type[BaseException], ...] = (KafkaError, ConnectionError, TimeoutError, httpx.HTTPError)


@dataclass(frozen=True)
class Source:
    """Where a value was read: what a dead letter copies and names."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)

    @classmethod
    def of(cls, message: Any) -> Source:
        """From a Faust ConsumerMessage (`event.message`) or an aiokafka ConsumerRecord."""
        headers = message.headers or ()
        if hasattr(headers, "items"):
            headers = headers.items()
        return cls(message.topic, message.partition, message.offset, message.key, message.value, tuple(headers))


def reason_of(kind: Kind, why: BaseException | str) -> str:
    """`<kind>: <exception type>[: <message>]` (e.g. `decode: EOFError`), or `<kind>: <words>`."""
    if isinstance(why, str):
        text = f"{kind}: {why}"
    else:
        text = f"{kind}: {type(why).__name__}"
        if str(why):
            text += f": {why}"
    return text[:REASON_CHARS]


def headers_of(agent: str, source: Source, reason: str) -> Headers:
    kept = [(k, bytes(v)) for k, v in source.headers if not k.startswith(PREFIX)]
    return [*kept, (REASON, reason.encode()), (TOPIC, source.topic.encode()),
            (PARTITION, str(source.partition).encode()), (OFFSET, str(source.offset).encode()),
            (AGENT, agent.encode())]


class DeadLetters:
    """A process's poison handling: one per worker process, shared by all its consumers."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.counts: Counter[tuple[str, str, Kind]] = Counter()  # (agent, topic, kind) -> values

    async def handle(self, agent: str, source: Source, apply: Apply, *,
                     schemas: Collection[str] | None = None) -> bool:
        """Decodes the value and applies it; poison is dead-lettered and skipped. True when
        the value was applied (which includes a refusal by the fold), False when it was poison.
        `schemas`, when given, are the only schemas the agent takes."""
        try:
            name, record = codec().decode(source.value)  # type: ignore[arg-type]  # None is poison too
        except Exception as exc:
            await self.dead_letter(agent, source, Kind.DECODE, exc)
            return False
        if schemas is not None and name not in schemas:
            await self.dead_letter(agent, source, Kind.SCHEMA, f"{agent} does not take {name}")
            return False
        try:
            result = apply(name, record)
            if inspect.isawaitable(result):
                await result
        except NOT_POISON:
            raise
        except Exception as exc:
            await self.dead_letter(agent, source, Kind.APPLY, exc)
            return False
        return True

    async def dead_letter(self, agent: str, source: Source, kind: Kind, why: BaseException | str) -> None:
        reason = reason_of(kind, why)
        log.warning("poison message on %s partition %d offset %d, skipped by %s and dead-lettered: %s",
                    source.topic, source.partition, source.offset, agent, reason)
        if isinstance(why, BaseException) and kind is Kind.APPLY:
            log.debug("the failure that made it poison", exc_info=why)
        try:
            await self.send(source.key, source.value, headers_of(agent, source, reason))
        except Exception as failure:
            log.error("could not dead-letter %s partition %d offset %d: %s",
                      source.topic, source.partition, source.offset, failure)
            raise
        self.counts[agent, source.topic, kind] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> dict[str, Any]:
        """For /healthz: how many values this process dead-lettered since it started, and where from."""
        return {"count": self.total,
                "by": [{"agent": agent, "topic": topic, "kind": str(kind), "count": n}
                       for (agent, topic, kind), n in sorted(self.counts.items())]}
