"""Following jobs as they change, through the job service: what the live views (api/events.py)
are made of. No HTTP here either.

A job this worker owns is waited on in its own table: the store's watchers wake at every change
the fold makes. A job that another jobs worker owns is read from that worker through the peers,
every POLL_SECONDS, for as long as someone follows it (a peer call each time; a streaming peer
operation would save them, and is not needed at the rates the views see). The owner is asked
again at every step, so a job whose partition moves in a rebalance is still followed.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import cast

from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.errors import NotFound, NotYetVisible
from diarist.streams.jobs.service import TERMINAL, JobService
from diarist.streams.jobs.types import JobProgress

POLL_SECONDS = 0.5  # how often a job another worker owns is read again while followed
SETTLE_POLL_SECONDS = 0.1  # ... while waiting for its owner to fold an event just seen on the topic
IDLE_SECONDS = 15.0  # follow() yields None after this long without a change
SLICE_SECONDS = 1.0  # a wait on this worker's table, between two looks at who owns the job

log = logging.getLogger(__name__)
Mark = tuple[int, datetime, float, str | None]


def mark(job: lc.Job) -> Mark:
    """What differs after every event the fold applies to the job."""
    return job["version"], job["updated_at"], job["progress"], job["callback_failure_reason"]


async def follow(jobs: JobService, job_id: str, *, poll: float = POLL_SECONDS,
                 idle: float = IDLE_SECONDS) -> AsyncGenerator[lc.Job | None, None]:
    """The job now, then each time it changes, until it is in a terminal status (COMPLETED,
    FAILED, STOPPED or DELETED: that state is the last one given); None each time `idle` seconds
    pass without a change, so that a caller can show it is still there. NotFound at once for no
    such job."""
    job = await jobs.read(job_id)
    yield job
    while job["status"] not in TERMINAL:
        last = mark(job)

        def moved(j: lc.Job, last: Mark = last) -> bool:
            return mark(j) != last

        changed = await _reached(jobs, job_id, moved, poll=poll, timeout=idle)
        if changed is None or mark(changed) == last:
            yield None
            continue
        job = changed
        yield job


async def settled(jobs: JobService, job_id: str, name: str, event: lc.Event, *,
                  poll: float = SETTLE_POLL_SECONDS, timeout: float = 5.0) -> lc.Job | None:
    """The job once its owner folded `event` (seen on the events topic, which the fold may not
    have reached yet), or as it is when `timeout` passes; None when it cannot be read."""
    return await _reached(jobs, job_id, took(name, event), poll=poll, timeout=timeout)


def took(name: str, event: lc.Event) -> Callable[[lc.Job], bool]:
    """Whether a job is past the event: it made (or was refused for) its version, or, for an
    event that belongs to a version, the job shows it or moved on."""
    version = event["version"]
    if name == lc.PROGRESS:
        percent = cast(JobProgress, event)["percent"]
        return lambda job: job["version"] > version or job["progress"] >= percent or job["status"] in TERMINAL
    if name == lc.CALLBACK_FAILED:
        return lambda job: job["version"] > version or job["callback_failure_reason"] is not None
    return lambda job: job["version"] >= version


async def _reached(jobs: JobService, job_id: str, predicate: Callable[[lc.Job], bool], *, poll: float,
                   timeout: float) -> lc.Job | None:
    """The job once `predicate` holds, or the last one read when `timeout` passes (None: never read)."""
    deadline = time.monotonic() + timeout
    job: lc.Job | None = None
    while True:
        remaining = deadline - time.monotonic()
        if jobs.peers.owner_of(job_id) is None:
            try:
                found = await jobs.store.wait_for(job_id, lambda j: j is not None and predicate(j),
                                                  max(0.0, min(remaining, SLICE_SECONDS)))
                return found
            except NotYetVisible:
                job = jobs.store.get(job_id) or job
        else:
            try:
                job = await jobs.read(job_id)
            except NotFound:
                pass
            except Exception as exc:  # a peer that does not answer now may answer at the next look
                log.debug("reading job %s from its owner failed: %s", job_id, exc)
            if job is not None and predicate(job):
                return job
            await asyncio.sleep(max(0.0, min(poll, remaining)))
        if time.monotonic() >= deadline:
            return job
