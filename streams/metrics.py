"""Prometheus metrics of the workers (prometheus-client, its process-wide registry).

A jobs worker's edge serves them with its own at /metrics (api/metrics.py); an inference worker
serves its own on DIARIST_INFERENCE_METRICS_PORT (`serve_inference_metrics`). Counters count what
this process did; Prometheus sums them over the processes. docs/running.md lists them all.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import REGISTRY, Collector

log = logging.getLogger(__name__)

# Transitions the jobs agent folded (each once: a replayed event is refused and not counted), by
# the API the job came through. Every job is folded by exactly one jobs worker.
_TRANSITIONS = {
    "diarist.JobCreated": Counter("diarist_jobs_submitted_total", "Jobs created (folded created events)", ["api"]),
    "diarist.JobCompleted": Counter("diarist_jobs_completed_total", "Jobs that completed", ["api"]),
    "diarist.JobFailed": Counter("diarist_jobs_failed_total", "Jobs that failed", ["api"]),
    "diarist.JobStopped": Counter("diarist_jobs_stopped_total", "Jobs stopped", ["api"]),
    "diarist.JobRetried": Counter("diarist_jobs_retried_total", "Jobs queued again by a retry", ["api"]),
    "diarist.JobDeleted": Counter("diarist_jobs_deleted_total", "Jobs deleted", ["api"]),
}


def transition_folded(name: str, job: Mapping[str, Any]) -> None:
    """The fold took the event `name` and made `job`."""
    if counter := _TRANSITIONS.get(name):
        counter.labels(job["spec"]["options"].get("api", "diarist")).inc()


CALLBACK_DELIVERIES = Counter("diarist_callback_deliveries_total",
                              "Callback deliveries that ended, per URL: delivered, or failed for good", ["outcome"])
CALLBACK_RETRIES = Counter("diarist_callback_retries_total", "Callback attempts after a first that did not deliver")

_STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
STAGE_SECONDS = Histogram("diarist_inference_stage_seconds",
                          "Seconds a job spent in each stage of the pipeline: decode, vad, diarization, language, "
                          "transcription", ["stage"], buckets=_STAGE_BUCKETS)
REAL_TIME_FACTOR = Histogram("diarist_inference_real_time_factor",
                             "Seconds of processing (decode to the last word) per second of media",
                             buckets=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10))
INFERENCE_RUNS = Counter("diarist_inference_runs_total",
                         "Runs of a job's pipeline in this inference worker, by how they ended", ["outcome"])


def pipeline_timed(timings: Mapping[str, float]) -> None:
    """The stage timings an inference process reported for one run (streams/inference/pipeline.py)."""
    for stage, seconds in timings.items():
        if stage not in ("media_seconds", "total"):
            STAGE_SECONDS.labels(stage).observe(seconds)
    if timings.get("media_seconds", 0) > 0 and "total" in timings:
        REAL_TIME_FACTOR.observe(timings["total"] / timings["media_seconds"])


class _DeadLetters(Collector):
    """diarist_dead_letters_total from the dead-letter handlers of this process
    (streams/deadletters.py keeps the counts: (agent, topic, kind) -> values)."""

    def __init__(self) -> None:
        self.handlers: list[Any] = []  # each with counts: (agent, topic, kind) -> values

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily("diarist_dead_letters", "Values skipped as poison and copied to the "
                                     "dead-letter topic", labels=["agent", "topic", "kind"])
        totals: dict[tuple[str, str, str], int] = {}
        for handler in self.handlers:
            for (agent, topic, kind), n in handler.counts.items():
                totals[agent, topic, str(kind)] = totals.get((agent, topic, str(kind)), 0) + n
        for labels, n in sorted(totals.items()):
            family.add_metric(list(labels), n)
        yield family


_dead_letters = _DeadLetters()
REGISTRY.register(_dead_letters)


def count_dead_letters(handler: Any) -> None:
    """Counts the values `handler` (a streams.deadletters.DeadLetters: its `counts`) dead-lettered."""
    if handler is not None and all(handler is not known for known in _dead_letters.handlers):
        _dead_letters.handlers.append(handler)


def serve_inference_metrics(port: int, host: str) -> None:
    """An inference worker's own /metrics (each scraped on its own: inference runs on other machines
    than the edge, and Prometheus sums the processes)."""
    start_http_server(port, addr=host)
    log.info("metrics at http://%s:%d/metrics", host, port)
