"""GET /metrics: Prometheus metrics of this jobs worker and its edge (prometheus-client's text format).

Asked with the API key (`Authorization: Bearer <key>`, Prometheus' `authorization.credentials`),
as every other path that is not documentation or /healthz: the figures name the APIs in use and
the load, which is not for anyone who can reach the edge.

What is measured where (docs/running.md has the whole list):
- the jobs in each status, per API: the counts of this worker's index (its partitions), read at
  each scrape; sum them over the jobs workers;
- submissions, completions, failures ...: counted by the fold (streams/metrics.py);
- the inference queue depth: the lag of the inference consumer group on the events topic (end
  offsets less committed ones), and the same for every group of the deployment, asked of the
  broker at most every LAG_REFRESH seconds; every jobs worker reports the same figure;
- callbacks and dead letters: counted where they happen, in this process;
- HTTP requests per route template, method and status, and their latency (`HttpMetrics`, the
  outermost middleware of the edge, so refused and failed requests count too).
Inference workers serve their own (stage durations, real-time factor) on
DIARIST_INFERENCE_METRICS_PORT.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from diarist.api.surface import Surface
from diarist.infra.logs import job_context
from diarist.streams import metrics as stream_metrics
from diarist.streams.topics import topics

log = logging.getLogger(__name__)

LAG_REFRESH = 10.0  # seconds: a scrape asks the broker for offsets at most this often
ADMIN_TIMEOUT = 5.0

JOBS = Gauge("diarist_jobs", "Jobs in this worker's partitions, by status and by the API they came through",
             ["status", "api"])
CONSUMER_LAG = Gauge("diarist_consumer_lag", "Events on the lifecycle topic that a consumer group has not yet "
                     "committed (end offsets less committed offsets)", ["group"])
QUEUE_DEPTH = Gauge("diarist_inference_queue_depth",
                    "Lifecycle events the inference workers have not yet taken: their consumer group's lag")
HTTP_REQUESTS = Counter("diarist_http_requests", "HTTP requests answered, by route template, method and status",
                        ["route", "method", "status"])
HTTP_SECONDS = Histogram("diarist_http_request_duration_seconds", "Seconds from a request to the end of its answer",
                         ["route", "method"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Lag:
    """The lag of each consumer group of the deployment on the events topic, asked of the broker
    at most every LAG_REFRESH seconds."""

    def __init__(self) -> None:
        self.at = 0.0
        self.lock = asyncio.Lock()

    async def refresh(self, admin: AdminClient, settings: Any) -> None:
        async with self.lock:
            if time.monotonic() - self.at < LAG_REFRESH:
                return
            self.at = time.monotonic()
            names = topics(settings)
            groups = (names.jobs_app, names.inference_app, names.callbacks_group)
            try:
                lags = await asyncio.to_thread(consumer_lag, admin, names.events, groups)
            except Exception as exc:  # the broker is away: the last figures stay
                log.info("consumer lag not refreshed: %s", exc)
                return
            for group, lag in lags.items():
                CONSUMER_LAG.labels(group).set(lag)
            QUEUE_DEPTH.set(lags[names.inference_app])


def consumer_lag(admin: AdminClient, topic: str, groups: tuple[str, ...]) -> dict[str, int]:
    """group -> events of `topic` not yet committed (from the earliest offset where it committed none)."""
    partitions = admin.list_topics(topic, timeout=ADMIN_TIMEOUT).topics[topic].partitions
    tps = [TopicPartition(topic, p) for p in partitions]
    ends = {tp.partition: f.result(ADMIN_TIMEOUT).offset
            for tp, f in admin.list_offsets({tp: OffsetSpec.latest() for tp in tps},
                                            request_timeout=ADMIN_TIMEOUT).items()}
    starts = {tp.partition: f.result(ADMIN_TIMEOUT).offset
              for tp, f in admin.list_offsets({tp: OffsetSpec.earliest() for tp in tps},
                                              request_timeout=ADMIN_TIMEOUT).items()}
    lags = {}
    for group in groups:
        request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])]
        answer = admin.list_consumer_group_offsets(request, request_timeout=ADMIN_TIMEOUT)[group].result(ADMIN_TIMEOUT)
        committed = {tp.partition: tp.offset for tp in answer.topic_partitions if tp.offset >= 0}
        lags[group] = sum(max(0, ends[p] - committed.get(p, starts[p])) for p in ends)
    return lags


_lag = Lag()


async def serve_metrics(request: Request) -> Response:
    worker = request.app.state.worker
    JOBS.clear()
    for (status, api), n in worker.store.index.counts().items():
        JOBS.labels(status, api).set(n)
    stream_metrics.count_dead_letters(getattr(worker, "dead_letters", None))
    await _lag.refresh(request.app.state.admin, worker.settings)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class HttpMetrics:
    """Counts each request by route template (never the raw path: ids would make a series each),
    method and status, and times it; a request about one job logs with its job_id."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route, params = self._template(scope)
        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        status = 500  # unless an answer starts

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            with job_context(params.get("job_id") or params.get("id")):
                await self.app(scope, receive, sending)
        finally:
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_SECONDS.labels(route, method).observe(time.perf_counter() - started)

    def _template(self, scope: Scope) -> tuple[str, dict[str, Any]]:
        for route in self.routes:
            if isinstance(route, Mount):
                if scope["path"].startswith(route.path + "/"):
                    return route.path + "/{path}", {}
                continue
            match, child = route.matches(scope)
            if match != Match.NONE and isinstance(route, Route):
                return route.path, child.get("path_params", {})
        return "unmatched", {}


routes = [Route("/metrics", serve_metrics, methods=["GET"])]

paths = {
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics of this jobs worker and its edge",
            "operationId": "metrics",
            "responses": {
                "200": {"description": "the Prometheus text format",
                        "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
                "401": {"$ref": "#/components/responses/Unauthorized"},
            },
        },
    },
}

surface = Surface("operations", "Prometheus metrics.", routes, paths)
