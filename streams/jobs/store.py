"""The job store: this worker's partitions of the jobs table, and how to ask for a change.

Only the jobs agent writes the jobs table (JobStore.apply). Everyone else asks for a change by
publishing a lifecycle event and waiting for the fold to take it (`transition`).
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Protocol

from diarist.infra.logs import job_context
from diarist.schemas import codec
from diarist.streams import metrics
from diarist.streams.blobs import BlobStore, check_key
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.errors import Conflict, NotFound, NotYetVisible
from diarist.streams.jobs.index import JobIndex

Publish = Callable[[str, lc.Event], Awaitable[None]]
JOB_SCHEMA = "diarist.Job"
ERASE_ATTEMPTS = 3
log = logging.getLogger(__name__)


class Journal(Protocol):
    """Somewhere job state can be read and waited on."""

    def get(self, job_id: str) -> lc.Job | None: ...

    async def wait_for(self, job_id: str, predicate: Callable[[lc.Job | None], bool],
                       timeout: float) -> lc.Job | None: ...


class Watchers:
    """Wakes those waiting for a job to change."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def changed(self, job_id: str) -> None:
        if event := self._events.pop(job_id, None):
            event.set()

    async def wait_for(self, read: Callable[[], lc.Job | None], job_id: str,
                       predicate: Callable[[lc.Job | None], bool], timeout: float) -> lc.Job | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(job := read()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NotYetVisible(f"job {job_id} did not change within {timeout} s")
            event = self._events.setdefault(job_id, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass
        return job


class JobStore:
    def __init__(self, table: Any, index: JobIndex, blobs: BlobStore) -> None:
        self.table = table
        self.index = index
        self.blobs = blobs
        self.watchers = Watchers()

    def get(self, job_id: str) -> lc.Job | None:
        data = self.table.get(job_id)
        return codec().decode(data)[1] if data else None

    def apply(self, name: str, event: lc.Event) -> lc.Job | None:
        """Folds one event into the table. The jobs agent calls this through `fold`."""
        job_id = event["job_id"]
        with job_context(job_id):
            before = self.get(job_id)
            after = lc.fold(before, name, event)
            if after is not before:
                self.table[job_id] = codec().encode(JOB_SCHEMA, after)
                if after is not None and name != lc.PROGRESS:
                    metrics.transition_folded(name, after)
                    log.info("job %s is %s (version %d, %s)", job_id, after["status"], after["version"],
                             lc.EVENT_WORDS.get(name, name))
            if after is not None:
                # Also on a refused (replayed) event: these side effects are idempotent, and a
                # crash may have come between the table write and them.
                self.index.put(after)
            self.watchers.changed(job_id)
            return after

    async def fold(self, name: str, event: lc.Event) -> lc.Job | None:
        """`apply`, erasing a deleted job's media and results first, so that whoever waits for the
        deletion finds them gone (also on a replayed event: erasing is idempotent). Only the jobs
        agent calls this."""
        after = lc.fold(self.get(event["job_id"]), name, event)
        if after is not None and after["status"] == lc.DELETED:
            await self.erase(after)
        return self.apply(name, event)

    async def erase(self, job: lc.Job) -> None:
        """Deletes the job's media and every result it had, trying again for a few seconds when
        the blob store fails (a network store may); what is still left then is logged. A key
        that leaves the store raises ValueError at once (the event is poison)."""
        keys = [check_key(job["spec"]["media"]["key"]), result_prefix(job["id"])]
        for attempt in range(1, ERASE_ATTEMPTS + 1):
            try:
                for key in keys:
                    await self.blobs.remove(key)
                return
            except Exception as exc:  # the blob store's own errors, whatever its client raises
                if attempt == ERASE_ATTEMPTS:
                    log.error("job %s: could not erase %s from the blob store %s: %s", job["id"], " and ".join(keys),
                              self.blobs.url, exc)
                    return
                await asyncio.sleep(0.5 * 2 ** attempt)

    async def wait_for(self, job_id: str, predicate: Callable[[lc.Job | None], bool],
                       timeout: float = 10.0) -> lc.Job | None:
        return await self.watchers.wait_for(lambda: self.get(job_id), job_id, predicate, timeout)

    def page(self, *, limit: int, **filters: Any) -> tuple[list[lc.Job], str | None]:
        page = self.index.page(limit=limit, **filters)
        jobs = [job for job_id in page.ids if (job := self.get(job_id)) is not None]
        return jobs, page.next_cursor

    def reconcile_index(self) -> int:
        """Indexes exactly the jobs in this worker's partitions of the table."""
        return self.index.reconcile(codec().decode(value)[1] for value in self.table.values() if value)


def media_key(job_id: str) -> str:
    return f"media/{job_id}"


def result_prefix(job_id: str) -> str:
    return f"results/{job_id}"


def result_key(job_id: str, attempt: int) -> str:
    return f"{result_prefix(job_id)}/attempt-{attempt}.json"


def _reached(job: lc.Job | None, version: int) -> bool:
    return job is not None and job["version"] >= version


def job_id_for_request(request_id: str) -> str:
    """The job a media event asks for: the same request id always names the same job."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"diarist:media:{request_id}").hex


def new_job_id() -> str:
    return uuid.uuid4().hex


async def transition(journal: Journal, publish: Publish, job_id: str, name: str,
                     timeout: float = 10.0, **fields: Any) -> lc.Job:
    """Moves a job by one event, re-deciding when a racing writer takes the version first."""
    for _ in range(5):
        job = journal.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        event = lc.next_event(job, **fields)
        if reason := lc.refusal(job, name, event):
            raise Conflict(reason, job["status"])
        await publish(name, event)
        job = await journal.wait_for(job_id, partial(_reached, version=event["version"]), timeout)
        if lc.applied(job, event):
            return job
    raise Conflict("the job kept changing under the request; try again", job["status"] if job else None)
