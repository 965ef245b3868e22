"""Server-sent events: jobs as they change, for the status pages (api/ui.py) and any API client.

- `GET /v1/jobs/{id}/events`: one job, its state now, then each new state, until a terminal one
  (COMPLETED, FAILED, STOPPED, DELETED), then an `end` event, and the stream closes. Any jobs
  worker's edge serves any job: the job is followed through the job service
  (streams/jobs/follow.py), in this worker's table when it owns the job, else by reading it from
  its owner every half second.
- `GET /v1/events`: every job of the deployment, each time it changes. Each edge tails the
  lifecycle events topic itself, with one consumer outside any group over every partition, from
  the topic's end when its first subscriber comes (EventHub), and for each event sends the job as
  the job service reads it once its owner folded that event: so it sees every partition, whoever
  owns it. Events that come faster than the owner folds them are coalesced into one state.

The format (docs/api.md has it for clients): `event: job` with `data:` the job as GET
/v1/jobs/{id} shows it, on one line; `: keepalive` comments every KEEPALIVE_SECONDS without an
event; for one job, a last `event: end` with `{"id", "status"}`. Both streams begin with
`retry: 2000`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from diarist.api.problems import Problem
from diarist.api.surface import Surface, job_service
from diarist.api.views import job_json
from diarist.schemas import codec
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.follow import follow, settled
from diarist.streams.jobs.service import JobService
from diarist.streams.topics import topics

log = logging.getLogger(__name__)
MEDIA_TYPE = "text/event-stream"
KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000
QUEUE_SIZE = 1000  # states a subscriber may lag behind before its stream is ended
LINGER_SECONDS = 30.0  # the topic is tailed this long after the last subscriber left
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy may hold events back


def sse(event: str, data: Any) -> str:
    """One server-sent event; `data` as JSON on one line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n"


KEEPALIVE = ": keepalive\n\n"


def _stream(body: AsyncIterator[str]) -> Response:
    return StreamingResponse(body, media_type=MEDIA_TYPE, headers=HEADERS)


async def job_events(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    changes = follow(job_service(request), job_id)
    first = await anext(changes)  # no such job: 404 before the stream begins
    assert first is not None

    async def body() -> AsyncIterator[str]:
        last = first
        try:
            yield f"retry: {RETRY_MS}\n\n"
            yield sse("job", job_json(first))
            async for job in changes:
                if job is None:
                    yield KEEPALIVE
                else:
                    last = job
                    yield sse("job", job_json(job))
            yield sse("end", {"id": last["id"], "status": last["status"]})
        finally:
            await changes.aclose()

    return _stream(body())


async def all_events(request: Request) -> Response:
    hub = hub_of(request)
    try:
        subscriber = await hub.subscribe()
    except KafkaError as exc:
        raise Problem(503, f"the lifecycle events cannot be read now ({type(exc).__name__}); try again",
                      headers={"Retry-After": "2"}) from None

    async def body() -> AsyncIterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n\n"
            while not subscriber.closed or not subscriber.queue.empty():
                try:
                    data = await asyncio.wait_for(subscriber.queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield KEEPALIVE
                    continue
                if data is not None:
                    yield data
        finally:
            hub.unsubscribe(subscriber)

    return _stream(body())


class Subscriber:
    """One /v1/events stream: the events waiting to be sent to it."""

    def __init__(self, size: int = QUEUE_SIZE) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(size)
        self.closed = False

    def put(self, data: str) -> bool:
        """Queues an event; False (and the stream ends) when the subscriber lags too far behind."""
        if self.closed:
            return False
        try:
            self.queue.put_nowait(data)
            return True
        except asyncio.QueueFull:
            self.close()
            return False

    def close(self) -> None:
        self.closed = True
        try:
            self.queue.put_nowait(None)  # wakes the stream, which ends once the queue is empty
        except asyncio.QueueFull:
            pass


class EventHub:
    """One edge's tail of the lifecycle events topic, shared by its /v1/events streams."""

    def __init__(self, jobs: JobService, bootstrap: str, topic: str, partitions: int,
                 linger: float = LINGER_SECONDS) -> None:
        self.jobs = jobs
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.linger = linger
        self.subscribers: set[Subscriber] = set()
        self._running = False
        self._lock = asyncio.Lock()
        self._pending: dict[str, tuple[str, lc.Event]] = {}  # job id -> the last event seen, not yet sent
        self._settling: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def subscribe(self) -> Subscriber:
        """A new subscriber, given every job that changes from now on (the tail is positioned
        before this returns)."""
        async with self._lock:
            if not self._running:
                await self._start()
            subscriber = Subscriber()
            self.subscribers.add(subscriber)
            return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    async def _start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="latest")
        await consumer.start()
        try:
            partitions = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                consumer.seek(tp, ends[tp])
        except BaseException:
            await consumer.stop()
            raise
        self._running = True
        self._spawn(self._tail(consumer))

    async def _tail(self, consumer: AIOKafkaConsumer) -> None:
        alone_since: float | None = None
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        self._seen(record.value)
                if self.subscribers:
                    alone_since = None
                elif alone_since is None:
                    alone_since = time.monotonic()
                elif time.monotonic() - alone_since > self.linger:
                    self._running = False  # decided with no await since the look at subscribers
                    return
        except Exception:
            log.exception("tailing %s for /v1/events failed; its streams end, and clients reconnect", self.topic)
            self._running = False
            for subscriber in list(self.subscribers):
                subscriber.close()
            self.subscribers.clear()
        finally:
            await consumer.stop()

    def _seen(self, value: bytes | None) -> None:
        try:
            name, event = codec().decode(value or b"")
        except Exception:  # poison: the jobs agent dead-letters it; a tail reads past it
            return
        if name not in lc.LIFECYCLE_EVENTS:
            return
        job_id = event["job_id"]
        self._pending[job_id] = (name, cast(lc.Event, event))
        if job_id not in self._settling:
            self._settling[job_id] = self._spawn(self._settle(job_id))

    async def _settle(self, job_id: str) -> None:
        try:
            while (seen := self._pending.pop(job_id, None)) is not None:
                job = await settled(self.jobs, job_id, *seen)
                if job is not None:
                    self.publish(job)
        finally:
            self._settling.pop(job_id, None)

    def publish(self, job: lc.Job) -> None:
        data = sse("job", job_json(job))
        for subscriber in list(self.subscribers):
            if not subscriber.put(data):
                self.subscribers.discard(subscriber)

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)
        return task


def hub_of(request: Request) -> EventHub:
    """This edge's hub, made at the first /v1/events request."""
    state = request.app.state
    hub: EventHub | None = getattr(state, "event_hub", None)
    if hub is None:
        settings = state.worker.settings
        hub = state.event_hub = EventHub(job_service(request), settings.bootstrap, topics(settings).events,
                                         settings.partitions)
    return hub


routes: list[BaseRoute] = [
    Route("/v1/jobs/{job_id}/events", job_events, methods=["GET"]),
    Route("/v1/events", all_events, methods=["GET"]),
]

_STREAM_DESCRIPTION = (
    "Server-sent events (text/event-stream). `event: job` events carry the job as GET /v1/jobs/{id} shows it "
    "(`data:` JSON on one line); a `: keepalive` comment comes every 15 s without an event.")
# One server-sent event, as a client's parser gives it (OpenAPI 3.1 has a text/event-stream schema describe each
# event); x-item-schema says what its data holds.
_EVENT = {"type": "object", "properties": {
    "event": {"type": "string", "enum": ["job", "end"]},
    "data": {"type": "string", "contentMediaType": "application/json",
             "description": "job: the job as GET /v1/jobs/{id} shows it; end: {\"id\", \"status\"}"},
    "id": {"type": "string"}, "retry": {"type": "integer"}}}
_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]
_UNAUTHORIZED = {"$ref": "#/components/responses/Unauthorized"}
_FORBIDDEN = {"description": "the session cookie came with a request from another site, or a change without its "
                             "CSRF token", "content": {"application/problem+json": {
                                 "schema": {"$ref": "#/components/schemas/Problem"}}}}

paths = {
    "/v1/jobs/{job_id}/events": {
        "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "get": {
            "summary": "Follow one job: its state now, then each new state, until it ends",
            "operationId": "jobs_events",
            "description": _STREAM_DESCRIPTION + " After a terminal state (COMPLETED, FAILED, STOPPED, DELETED) "
                           "comes `event: end` with `{\"id\", \"status\"}`, and the stream closes; a client "
                           "closes its EventSource on `end` (it would reconnect and be sent the last state again).",
            "security": _SECURITY,
            "responses": {
                "200": {"description": "the job's states as server-sent events",
                        "content": {MEDIA_TYPE: {"schema": _EVENT,
                                                 "x-item-schema": {"$ref": "#/components/schemas/Job"}}}},
                "401": _UNAUTHORIZED,
                "403": _FORBIDDEN,
                "404": {"description": "no such job", "content": {"application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"}}}},
            },
        },
    },
    "/v1/events": {
        "get": {
            "summary": "Every job of the deployment, each time it changes",
            "operationId": "events",
            "description": _STREAM_DESCRIPTION + " From the moment the stream opens (nothing earlier is replayed); "
                           "states that change faster than they are read may be coalesced into the newest. A client "
                           "that reads too slowly has its stream ended (and reconnects).",
            "security": _SECURITY,
            "responses": {
                "200": {"description": "jobs as server-sent events",
                        "content": {MEDIA_TYPE: {"schema": _EVENT,
                                                 "x-item-schema": {"$ref": "#/components/schemas/Job"}}}},
                "401": _UNAUTHORIZED,
                "403": _FORBIDDEN,
                "503": {"description": "the lifecycle events topic cannot be read now",
                        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
            },
        },
    },
}

surface = Surface("events", "Server-sent events: jobs as they change.", routes, paths, cookie=True)
