"""The inference worker: a Faust app of its own (its own consumer group, so that inference
scales apart from the jobs workers) that runs queued jobs, each in an inference process.

At-least-once without double completion: the event that queued a job is acknowledged only
after the job ends, so a worker that dies mid-job leaves it to the next owner of the partition,
which finds the job IN_PROGRESS and runs it again. Every outcome is a versioned event, so of
two runs racing to complete one job, only one `completed` can take.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from aiokafka.errors import KafkaTimeoutError

from diarist.infra.logs import job_context
from diarist.infra.settings import Settings
from diarist.schemas import codec
from diarist.streams import blobs, metrics
from diarist.streams.app import dead_letters, faust_app, publish
from diarist.streams.deadletters import NOT_POISON, Source
from diarist.streams.heartbeats import HEARTBEAT_SCHEMA
from diarist.streams.inference.process import Cancelled, InferenceProcess, JobFailed
from diarist.streams.inference.weights import MODELS
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.errors import Conflict, NotYetVisible
from diarist.streams.jobs.store import Journal, result_key, transition
from diarist.streams.jobs.tail import JobTail
from diarist.streams.jobs.types import ENGINES, Status
from diarist.streams.stalls import StallWatch
from diarist.streams.topics import topics

log = logging.getLogger(__name__)
PROGRESS_EVERY = 2.0
RUN_ATTEMPTS = 3


def remove_orphaned_scratch() -> list[Path]:
    """Removes the scratch directories of inference workers and engines that are gone: a process
    killed with SIGKILL leaves its own (decoded audio, 230 MB an hour a channel), and nothing else
    would ever remove it. Returns what was removed."""
    removed = []
    for directory in Path(tempfile.gettempdir()).glob("diarist-*-*"):
        prefix, _, pid = directory.name.rpartition("-")
        if prefix in ("diarist-engine", "diarist-media") and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class InferenceWorker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = topics(settings)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.app = faust_app(self.names.inference_app, settings)
        self.events_topic = self.app.topic(self.names.events, key_serializer="raw", value_serializer="raw")
        self.heartbeat_topic = self.app.topic(self.names.heartbeats, key_serializer="raw", value_serializer="raw")
        self.blobs = blobs.from_settings(settings)
        # Media from a store that is not a local directory is copied here for the run (PyAV decodes a file).
        self.scratch = Path(tempfile.gettempdir()) / f"diarist-media-{os.getpid()}"
        if removed := remove_orphaned_scratch():
            log.info("removed %d scratch directories of killed inference processes", len(removed))
        self.processes: dict[tuple[str, str], InferenceProcess] = {}
        # Logged and sent to the dead-letter topic; the jobs workers' /healthz counts their own.
        self.dead_letters = dead_letters(self.app, self.names.dead_letters)
        self._reloading: asyncio.Future | None = None
        self._jobs_running = 0
        self._stalls: StallWatch | None = None
        self.app.agent(self.events_topic, name="run-jobs", concurrency=1)(self._run_jobs)
        self.app.timer(10.0, name="refetch-stalled-partitions")(self._refetch_stalled)
        self.app.timer(5.0, name="heartbeat")(self._heartbeat)
        idle_check = min(30.0, max(1.0, settings.model_idle_seconds / 2))
        self.app.timer(idle_check, name="unload-idle-processes")(self._unload_idle_processes)
        self.app.task(self._load_default_model)
        self.app.on_before_shutdown.connect(self._close_blobs)

    @property
    def default_engine(self) -> tuple[str, str]:
        return self.settings.engine, self.settings.model

    def process(self, engine: str, model: str) -> InferenceProcess:
        """The inference process that runs this ASR engine and model, started on first use."""
        if (engine, model) not in self.processes:
            self.processes[engine, model] = InferenceProcess(engine, model, self.settings.inference_threads)
        return self.processes[engine, model]

    async def publish(self, name: str, event: lc.Event) -> None:
        await publish(self.events_topic, name, event)

    async def _close_blobs(self, app: object, **kwargs: object) -> None:
        await self.blobs.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    async def _load_default_model(self) -> None:
        await self.process(*self.default_engine).start()

    async def _unload_idle_processes(self) -> None:
        idle_since = time.monotonic() - self.settings.model_idle_seconds
        for key, process in self.processes.items():
            if key != self.default_engine and process.loaded and process.last_used < idle_since and not process.busy:
                log.info("unloading %s %s, unused for %.0f s", *key, self.settings.model_idle_seconds)
                process.kill()

    async def _heartbeat(self) -> None:
        process = self.process(*self.default_engine)
        beat = {"worker": self.name, "model": self.settings.model, "loaded": process.loaded,
                "device": process.device, "at": lc.now()}
        await self.heartbeat_topic.send(key=self.name.encode(), value=codec().encode(HEARTBEAT_SCHEMA, beat))

    async def _run_jobs(self, stream) -> None:
        async for event in stream.events():
            message = event.message
            # Other events are the fold's business: run-jobs only skips what it cannot decode
            # or run (a job's own failures end in FAILED, not here).
            await self.dead_letters.handle("run-jobs", Source.of(message),
                                           partial(self._run_queued, message.partition, message.offset))

    async def _run_queued(self, partition: int, offset: int, name: str, payload: lc.Event) -> None:
        if name in (lc.CREATED, lc.RETRIED):
            await self._run_with_retries(name, payload, partition, offset)

    async def _run_with_retries(self, name: str, queued_event: lc.Event, partition: int, offset: int) -> None:
        self._jobs_running += 1
        try:
            with job_context(queued_event["job_id"]):  # every line logged meanwhile names the job
                await self._attempts(name, queued_event, partition, offset)
        finally:
            self._jobs_running -= 1

    async def _refetch_stalled(self) -> None:
        """Partitions of the events that the consumer stopped fetching are fetched again
        (streams/stalls.py); a failure to look is only logged: the next look may succeed."""
        if self._stalls is None:
            self._stalls = StallWatch(self.app.consumer, self.names.events, lambda: self._jobs_running > 0)
        try:
            await self._stalls.check()
        except Exception as exc:
            log.warning("could not look for stalled partitions: %s: %s", type(exc).__name__, exc)

    async def _attempts(self, name: str, queued_event: lc.Event, partition: int, offset: int) -> None:
        """Runs the job; an unexpected error is tried again, then fails the job, so that a job
        is never left IN_PROGRESS by a worker that goes on. Kafka not answering is no fault of
        the job: it is waited out however long it takes, the queued event unacknowledged."""
        job_id = queued_event["job_id"]
        error: Exception | None = None
        for attempt in range(1, RUN_ATTEMPTS + 1):
            try:
                return await self._while_kafka_fails(job_id, lambda: self.run(name, queued_event, partition, offset))
            except Exception as exc:
                log.exception("job %s: attempt %d failed", job_id, attempt)
                error = exc
                await asyncio.sleep(attempt)
        await self._while_kafka_fails(job_id, lambda: self._fail_queued(name, queued_event, partition, offset,
                                                                        f"{type(error).__name__}: {error}"))

    @staticmethod
    async def _while_kafka_fails(job_id: str, step: Callable[[], Awaitable[None]]) -> None:
        """step(), again and again while it fails for want of Kafka (a broker down, a leader
        moving, a tail that cannot catch up): the job waits for the cluster, never fails for it."""
        for outage in itertools.count():
            try:
                return await step()
            except NOT_POISON as exc:
                delay = min(30.0, 2.0 ** outage)
                log.warning("job %s: waiting for the cluster (%s: %s); trying again in %.0f s",
                            job_id, type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)

    async def _fail_queued(self, name: str, queued_event: lc.Event, partition: int, offset: int, why: str) -> None:
        job = lc.queued(name, queued_event)
        async with JobTail(self.settings.bootstrap, self.names.events, partition, offset + 1, job) as tail:
            if tail.job["status"] == Status.QUEUED:  # only a started job can fail
                try:
                    await transition(tail, self.publish, job["id"], lc.STARTED, worker=self.name)
                except Conflict:
                    return
            await self._fail(tail, job["id"], f"the inference worker failed: {why}")

    async def run(self, name: str, queued_event: lc.Event, partition: int, offset: int) -> None:
        job = lc.queued(name, queued_event)
        async with JobTail(self.settings.bootstrap, self.names.events, partition, offset + 1, job) as tail:
            job = tail.job
            if job["status"] == Status.QUEUED:
                try:
                    job = await transition(tail, self.publish, job["id"], lc.STARTED, worker=self.name)
                except Conflict:
                    if tail.job["status"] == Status.QUEUED:  # its start never showed on the tail
                        raise KafkaTimeoutError(f"job {job['id']}: its start was not seen on {tail.tp}") from None
                    return  # stopped before it started
            elif job["status"] != Status.IN_PROGRESS:
                return  # over already; a later retry comes as an event of its own
            await self._execute(tail, job)

    async def _execute(self, tail: JobTail, job: lc.Job) -> None:
        job_id, spec = job["id"], job["spec"]
        options = dict(spec["options"])
        model = options.get("model") or self.settings.model
        engine = options.get("engine") or self.settings.engine
        if model not in MODELS:
            return await self._fail(tail, job_id, f"unknown model {model!r}")
        if engine not in ENGINES:
            return await self._fail(tail, job_id, f"unknown engine {engine!r}")
        try:
            async with self.blobs.local_copy(spec["media"]["key"], self.scratch) as media:
                await self._run(tail, job, media, engine, model, options)
        except blobs.BlobMissing:
            await self._fail(tail, job_id, blobs.MEDIA_MISSING)

    async def _run(self, tail: JobTail, job: lc.Job, media: Path, engine: str, model: str, options: dict) -> None:
        job_id = job["id"]
        cancelled = asyncio.Event()
        watch = asyncio.create_task(self._watch_for_stop(tail, job_id, cancelled))
        last_progress = 0.0

        async def on_message(kind: str, data: dict) -> None:
            nonlocal last_progress
            if kind == "diarized":
                try:
                    await transition(tail, self.publish, job_id, lc.DIARIZED, **data)
                except Conflict:
                    pass  # the stop watcher ends the run
            elif kind == "timings":
                metrics.pipeline_timed(data)
                log.info("job %s: %.1f s of media in %.1f s (%s)", job_id, data["media_seconds"], data["total"],
                         ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in data.items()
                                   if stage not in ("total", "media_seconds")))
            elif kind == "progress" and time.monotonic() - last_progress >= PROGRESS_EVERY:
                last_progress = time.monotonic()
                await self.publish(lc.PROGRESS, lc.make_event(job_id, tail.job["version"], **data))

        try:
            result = await self.process(engine, model).run(media, options, on_message, cancelled)
        except Cancelled:
            metrics.INFERENCE_RUNS.labels("stopped").inc()
            log.info("job %s stopped while running", job_id)
            if (engine, model) == self.default_engine:  # killed with the run: be ready for the next job
                self._reloading = asyncio.ensure_future(self._load_default_model())
            return
        except JobFailed as exc:
            return await self._fail(tail, job_id, str(exc))
        finally:
            watch.cancel()

        key = result_key(job_id, job["version"])
        body = json.dumps({"job_id": job_id, **result}, ensure_ascii=False).encode()
        md5, size = await self.blobs.put(key, body)
        try:
            await transition(tail, self.publish, job_id, lc.COMPLETED_EVENT,
                             result={"key": key, "md5": md5, "size": size},
                             language=result["language"], language_probability=result["language_probability"])
            metrics.INFERENCE_RUNS.labels("completed").inc()
        except Conflict:
            await self.blobs.remove(key)  # stopped or deleted while the result was being written

    async def _fail(self, journal: Journal, job_id: str, reason: str) -> None:
        metrics.INFERENCE_RUNS.labels("failed").inc()
        try:
            await transition(journal, self.publish, job_id, lc.FAILED_EVENT, reason=reason)
        except Conflict:
            pass

    @staticmethod
    async def _watch_for_stop(tail: JobTail, job_id: str, cancelled: asyncio.Event) -> None:
        while True:
            try:
                await tail.wait_for(job_id, lambda j: j["status"] != Status.IN_PROGRESS, timeout=3600)
            except NotYetVisible:
                continue
            cancelled.set()
            return
