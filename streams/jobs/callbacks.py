"""Callbacks: when a job ends (COMPLETED, FAILED or STOPPED), it is POSTed to its callback_urls.

Who sends them: every jobs worker process runs a consumer of the lifecycle events in a consumer
group of its own (`<namespace>-callbacks`), so that sending never holds up the fold of events,
and the senders share the partitions among themselves as the jobs workers do.

At least once: an event's offset is committed only once all its deliveries ended, delivered or
failed for good and recorded, and every earlier event of its partition's too. A process that
dies mid-delivery leaves the event to the next owner of its partition, which sends it again;
a receiver tells a repeat by its X-Diarist-Event-Id. A new group starts at the beginning of the
topic, so that no end goes unannounced. Deliveries run side by side, so a slow receiver holds
up no other.

What is sent, and where: the edge says, in the words of the API surface the job was made
through (`Render`, given by api/app.py from each surface's callback_body and callback_url). The
job is read through the job service: the callbacks group does not share partitions out as the
jobs group does, so the job is often in another worker's table, and the service asks that
worker. The read waits until the job's fold reached the event's version, and only the ending
the job really made at that version is announced, never an event the fold refused. The job is
read once, when the event's deliveries start (so a job deleted at once, by
delete_after_seconds 0, may already say DELETED).

Retries: a network error, 408, 429 or 5xx is tried again after backoff, 2 x backoff, 4 x
backoff ..., DIARIST_CALLBACK_ATTEMPTS times in all; a 2xx ends it, and so does any other
answer (redirects are not followed). A delivery that failed for good is published as
diarist.JobCallbackFailed, which the fold records as the job's callback_failure_reason.
Deliveries go through the URL guard (streams/urls.py, DIARIST_URL_ALLOW): an address it refuses
is not tried again, and a reason never says what answered.

Poison: each event goes through the worker process's DeadLetters (streams/deadletters.py) as
agent `callbacks`: a value that cannot be decoded, or whose announcing raises, is dead-lettered,
counted and skipped; its offset is committed only after the dead letter was sent (or failed to
send: that is logged, and the copy is lost).

Signature: with DIARIST_CALLBACK_SECRET set, `X-Diarist-Signature: sha256=<hex HMAC-SHA256 of
the body, keyed by the secret>` lets the receiver check that the body came from this service.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from diarist.infra.logs import JOB_ID
from diarist.infra.settings import Settings
from diarist.streams import metrics
from diarist.streams.deadletters import DeadLetters, Source
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.errors import JobError
from diarist.streams.jobs.service import JobService, Result
from diarist.streams.jobs.store import Publish
from diarist.streams.topics import topics
from diarist.streams.urls import FetchRefused, failure_reason, guarded_client

log = logging.getLogger(__name__)

RETRIED_STATUSES = frozenset({408, 429})
REQUEST_TIMEOUT = 10.0
FOLD_WAIT = 60.0  # the longest an ended job may take to show its end in the jobs table
IN_FLIGHT = 100  # events whose deliveries run at once


@dataclass(frozen=True)
class Callback:
    urls: list[str]
    body: dict[str, Any]


# (the ended job, the result document of a COMPLETED job or None, the event's word) -> the callback
Render = Callable[[lc.Job, Result | None, str], Callback]


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers_of(job: lc.Job, event: lc.Event, body: bytes, secret: str) -> dict[str, str]:
    headers = {**job["spec"]["options"]["callback_headers"], "Content-Type": "application/json",
               "X-Diarist-Job-Id": job["id"], "X-Diarist-Event-Id": event["event_id"]}
    if secret:
        headers["X-Diarist-Signature"] = signature(secret, body)
    return headers


def announces(job: lc.Job, name: str, event: lc.Event) -> bool:
    """Whether the event is the transition the job made at its version (not one the fold refused)."""
    made = next((t for t in job["history"] if t["version"] == event["version"]), None)
    return made is not None and made["event_id"] == event["event_id"] and made["event"] == lc.EVENT_WORDS[name]


async def post(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str],
               attempts: int, backoff: float) -> str | None:
    """Delivers one callback, retrying; None once delivered, else why it failed for good."""
    for attempt in range(1, attempts + 1):
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            reason = failure_reason(exc)  # never what answered
            if isinstance(exc, FetchRefused):
                return reason  # the guard refuses it every time
        else:
            if response.is_success:
                return None
            reason = failure_reason(response.status_code)
            if response.status_code < 500 and response.status_code not in RETRIED_STATUSES:
                return reason
        if attempt < attempts:
            metrics.CALLBACK_RETRIES.inc()
            await asyncio.sleep(backoff * 2 ** (attempt - 1))
    return f"{reason}, {attempts} attempts"


async def send_callbacks(settings: Settings, jobs: JobService, render: Render, dead_letters: DeadLetters) -> None:
    """Sends the callbacks of the partitions this process is given, until the worker stops;
    poison goes to `dead_letters` (the worker's, sending through its producer)."""
    names = topics(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap, group_id=names.callbacks_group, enable_auto_commit=False,
        auto_offset_reset="earliest", session_timeout_ms=int(settings.session_timeout * 1000),
        heartbeat_interval_ms=int(min(3.0, settings.session_timeout / 3) * 1000))
    async with guarded_client(jobs.url_allow, REQUEST_TIMEOUT) as receivers:  # each delivery through the URL guard
        sender = CallbackSender(settings, jobs, render, consumer, receivers, dead_letters)
        await consumer.start()
        try:
            consumer.subscribe([names.events], listener=_HandOver(sender))
            await sender.run()
        finally:
            await consumer.stop()


class CallbackSender:
    def __init__(self, settings: Settings, jobs: JobService, render: Render, consumer: AIOKafkaConsumer,
                 receivers: httpx.AsyncClient, dead_letters: DeadLetters) -> None:
        self.settings = settings
        self.dead_letters = dead_letters
        self.jobs = jobs
        self.publish: Publish = jobs.publish
        self.render = render
        self.consumer = consumer
        self.receivers = receivers
        # Per partition, the offsets of the events being delivered, in order; and what was committed.
        self.deliveries: dict[TopicPartition, deque[tuple[int, asyncio.Task]]] = {}
        self.committed: dict[TopicPartition, int] = {}

    async def run(self) -> None:
        try:
            while True:
                batches = await self.consumer.getmany(timeout_ms=1000, max_records=IN_FLIGHT)
                for tp, records in batches.items():
                    for record in records:
                        self._take(tp, record)
                await self.commit(self.consumer.assignment())
                await self._wait_for_room()
        finally:
            self.drop(set(self.deliveries))

    async def hand_over(self, partitions: set[TopicPartition]) -> None:
        """Gives up partitions: commits what was delivered, and stops the rest, which their next
        owner sends again."""
        await self.commit(partitions)
        self.drop(partitions)

    def _take(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        # Every event gets a task (those that are not endings end at once), so that a dead
        # letter, too, is acknowledged before its offset is committed.
        task = asyncio.create_task(self._deliver(Source.of(record)))
        self.deliveries.setdefault(tp, deque()).append((record.offset, task))

    async def commit(self, partitions: set[TopicPartition]) -> None:
        """Commits, per partition, up to its first event whose deliveries have not ended."""
        offsets = {}
        for tp in partitions:
            waiting = self.deliveries.get(tp, deque())
            while waiting and waiting[0][1].done():
                waiting.popleft()
            offsets[tp] = waiting[0][0] if waiting else await self.consumer.position(tp)
        changed = {tp: offset for tp, offset in offsets.items() if self.committed.get(tp) != offset}
        if not changed:
            return
        try:
            await self.consumer.commit(changed)
        except KafkaError as exc:  # a rebalance took a partition meanwhile; its new owner goes on
            log.info("callback offsets not committed: %s", exc)
            return
        self.committed.update(changed)

    async def _wait_for_room(self) -> None:
        running = [task for waiting in self.deliveries.values() for _, task in waiting if not task.done()]
        if len(running) >= IN_FLIGHT:
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)

    def drop(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            for _, task in self.deliveries.pop(tp, ()):
                task.cancel()
            self.committed.pop(tp, None)

    async def _deliver(self, source: Source) -> None:
        try:
            await self.dead_letters.handle("callbacks", source, self._announce)
        except Exception:  # not the event's fault (Kafka, a connection): it must not end the sender either
            log.exception("the callbacks of %s partition %d offset %d failed", source.topic, source.partition,
                          source.offset)

    async def _announce(self, name: str, event: lc.Event) -> None:
        if name not in lc.ENDINGS:
            return
        JOB_ID.set(event["job_id"])  # for what this delivery logs: each delivery is a task of its own
        job = await self._job_at(event)
        if job is None or not job["spec"]["options"]["callback_urls"] or not announces(job, name, event):
            return
        callback = self.render(job, await self._result(job), lc.EVENT_WORDS[name])
        body = json.dumps(callback.body).encode()
        headers = headers_of(job, event, body, self.settings.callback_secret)
        reasons = await asyncio.gather(*(post(self.receivers, url, body, headers, self.settings.callback_attempts,
                                              self.settings.callback_backoff_seconds) for url in callback.urls))
        for url, reason in zip(callback.urls, reasons):
            metrics.CALLBACK_DELIVERIES.labels("delivered" if reason is None else "failed").inc()
            if reason is not None:
                log.warning("job %s: the callback to %s failed: %s", job["id"], url, reason)
                failed = lc.make_event(job["id"], event["version"], url=url, reason=reason)
                await self.publish(lc.CALLBACK_FAILED, failed)

    async def _result(self, job: lc.Job) -> Result | None:
        """The result document of a COMPLETED job; None for any other (a deleted one included)."""
        if job["status"] != lc.COMPLETED:
            return None
        try:
            return await self.jobs.result(job["id"])
        except JobError:
            return None  # deleted meanwhile

    async def _job_at(self, event: lc.Event) -> lc.Job | None:
        """The job once its fold reached the event's version; None if not within FOLD_WAIT."""
        def reached(job: lc.Job) -> bool:
            return job["version"] >= event["version"]

        deadline = time.monotonic() + FOLD_WAIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                job = await self.jobs.wait(event["job_id"], until=frozenset(lc.Status), timeout=left,
                                           predicate=reached)
                if reached(job):
                    return job
            except (JobError, httpx.HTTPError):
                await asyncio.sleep(0.2)  # the job's owner is moving, or its fold not there yet
        log.warning("job %s did not reach version %d in %g s: its callbacks are not sent",
                    event["job_id"], event["version"], FOLD_WAIT)
        return None


class _HandOver(ConsumerRebalanceListener):
    def __init__(self, sender: CallbackSender) -> None:
        self.sender = sender

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.sender.hand_over(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass
