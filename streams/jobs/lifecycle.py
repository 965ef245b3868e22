"""The job state machine: lifecycle events and the fold that turns them into job records.

Every versioned event names the version it makes; it applies only on top of the version just
before it, and only where the state machine allows it. So the fold is idempotent by
construction: a replayed or duplicated event finds its version taken and changes nothing, and
two writers racing for the same version cannot both win (the loser re-reads and decides again).
Progress and callback failures are the exceptions: they belong to a version instead of making
one. Progress applies only when it reports more progress than the job has; a callback failure
only to the job's current attempt, and only the first one, so that it too applies once.
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

from diarist.streams.jobs.types import Job as Job  # the job's type, as lc.Job for those who import this
from diarist.streams.jobs.types import (
    JobCallbackFailed,
    JobCompleted,
    JobCreated,
    JobDiarized,
    JobFailed,
    JobProgress,
    JobRetried,
    LifecycleEvent,
    Status,
    Transition,
)

# Any lifecycle event; `name` says which (the Avro schema's full name, below).
Event = LifecycleEvent

# The statuses under their old names, for the modules that import them from here.
QUEUED, IN_PROGRESS, COMPLETED = Status.QUEUED, Status.IN_PROGRESS, Status.COMPLETED
FAILED, STOPPED, DELETED = Status.FAILED, Status.STOPPED, Status.DELETED

CREATED = "diarist.JobCreated"
STARTED = "diarist.JobStarted"
DIARIZED = "diarist.JobDiarized"
PROGRESS = "diarist.JobProgress"
COMPLETED_EVENT = "diarist.JobCompleted"
FAILED_EVENT = "diarist.JobFailed"
STOPPED_EVENT = "diarist.JobStopped"
RETRIED = "diarist.JobRetried"
DELETED_EVENT = "diarist.JobDeleted"
CALLBACK_FAILED = "diarist.JobCallbackFailed"
LIFECYCLE_EVENTS = (CREATED, STARTED, DIARIZED, PROGRESS, COMPLETED_EVENT, FAILED_EVENT,
                    STOPPED_EVENT, RETRIED, DELETED_EVENT, CALLBACK_FAILED)
# Events that belong to the version they name instead of making the next one.
UNVERSIONED = frozenset({PROGRESS, CALLBACK_FAILED})
# The events that end a run: the ones a job's callbacks announce.
ENDINGS = frozenset({COMPLETED_EVENT, FAILED_EVENT, STOPPED_EVENT})

# event -> (statuses it may follow, status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[Status], Status]] = {
    STARTED: (frozenset({Status.QUEUED}), Status.IN_PROGRESS),
    DIARIZED: (frozenset({Status.IN_PROGRESS}), Status.IN_PROGRESS),
    COMPLETED_EVENT: (frozenset({Status.IN_PROGRESS}), Status.COMPLETED),
    FAILED_EVENT: (frozenset({Status.IN_PROGRESS}), Status.FAILED),
    STOPPED_EVENT: (frozenset({Status.QUEUED, Status.IN_PROGRESS}), Status.STOPPED),
    RETRIED: (frozenset({Status.FAILED, Status.STOPPED}), Status.QUEUED),
    DELETED_EVENT: (frozenset({Status.COMPLETED, Status.FAILED, Status.STOPPED}), Status.DELETED),
}

# The short word for an event, as people and the job history say it.
EVENT_WORDS = {name: name.removeprefix("diarist.Job").lower() for name in LIFECYCLE_EVENTS}


def now() -> datetime:
    """The current time at the millisecond precision that Avro timestamps keep."""
    at = datetime.now(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def make_event(job_id: str, version: int, **fields: Any) -> Event:
    """An event of this job and version; `fields` are the ones its schema adds."""
    event = {"event_id": uuid.uuid4().hex, "job_id": job_id, "version": version, "occurred_at": now(), **fields}
    return cast(Event, event)


def next_event(job: Job, **fields: Any) -> Event:
    """An event that makes the job's next version."""
    return make_event(job["id"], job["version"] + 1, **fields)


def refusal(job: Job | None, name: str, event: Event) -> str | None:
    """Why the event cannot apply to the job, in words for a person; None when it can."""
    if name == CREATED:
        if event["version"] != 1:
            return "a job is created at version 1"
        return None if job is None else "the job already exists"
    if job is None:
        return "no such job"
    if name == PROGRESS:
        if job["status"] != Status.IN_PROGRESS or event["version"] != job["version"]:
            return "progress of a run that is over"
        return None if cast(JobProgress, event)["percent"] > job["progress"] else "no new progress"
    if name == CALLBACK_FAILED:
        return _callback_refusal(job, event)
    if event["version"] <= job["version"]:
        return f"version {event['version']} is already taken (the job is at {job['version']})"
    if event["version"] != job["version"] + 1:
        return f"version {event['version']} skips versions (the job is at {job['version']})"
    allowed_from, _ = TRANSITIONS[name]
    if job["status"] not in allowed_from:
        article = "an" if job["status"][0] in "AEIOU" else "a"
        return f"{article} {job['status']} job cannot be {EVENT_WORDS[name]}"
    if name == DIARIZED and job["diarized_at"] is not None:
        return "the job is already diarized"
    return None


def _callback_refusal(job: Job, event: Event) -> str | None:
    if job["callback_failure_reason"] is not None:
        return "a callback failure is already recorded"
    since = [t["event"] for t in job["history"] if t["version"] >= event["version"]]
    if not since or since[0] not in {EVENT_WORDS[name] for name in ENDINGS}:
        return f"the job did not end at version {event['version']}"
    if EVENT_WORDS[RETRIED] in since:
        return "a callback of an earlier attempt"
    return None


def fold(job: Job | None, name: str, event: Event) -> Job | None:
    """The job after the event, or the very same job object when the event is refused."""
    if refusal(job, name, event) is not None:
        return job
    if job is None:  # refusal() lets only a created event through to no job
        return queued(name, event)
    job = job.copy()
    at = event["occurred_at"]
    job["updated_at"] = at
    if name == PROGRESS:
        job["progress"] = cast(JobProgress, event)["percent"]
        return job
    if name == CALLBACK_FAILED:
        failed = cast(JobCallbackFailed, event)
        job["callback_failure_reason"] = f"the callback to {failed['url']} failed: {failed['reason']}"
        return job
    job["version"] = event["version"]
    job["status"] = TRANSITIONS[name][1]
    job["history"] = [*job["history"], _transition(name, event)]
    if name == STARTED:
        job["started_at"], job["diarized_at"], job["completed_at"], job["progress"] = at, None, None, 0.0
    elif name == DIARIZED:
        diarized = cast(JobDiarized, event)
        job["diarized_at"], job["media_info"], job["speakers"] = at, diarized["media"], diarized["speakers"]
        job["speech_seconds"], job["channels"] = diarized["speech_seconds"], diarized["channels"]
    elif name == COMPLETED_EVENT:
        completed = cast(JobCompleted, event)
        job["completed_at"], job["progress"], job["result"] = at, 100.0, completed["result"]
        job["language"], job["language_probability"] = completed["language"], completed["language_probability"]
    elif name == FAILED_EVENT:
        job["failure_reason"] = cast(JobFailed, event)["reason"]
    elif name == RETRIED:
        job["attempt"] += 1
        job["started_at"] = job["diarized_at"] = job["completed_at"] = None
        job["progress"] = 0.0
        job["failure_reason"] = job["callback_failure_reason"] = None
        job["result"] = None
    elif name == DELETED_EVENT:
        job["result"] = None
    return job


def applied(job: Job | None, event: Event) -> bool:
    """Whether this very event is part of the job's history."""
    return job is not None and any(t["event_id"] == event["event_id"] for t in job["history"])


def _transition(name: str, event: Event) -> Transition:
    return {"version": event["version"], "event": EVENT_WORDS[name], "event_id": event["event_id"],
            "at": event["occurred_at"]}


def as_created(job: Job) -> Job:
    """The job as its created event made it (version 1), whatever happened to it since: how a
    create answered, and answers again for a repeat of the same request."""
    created = job["history"][0]
    event = {"event_id": created["event_id"], "job_id": job["id"], "version": created["version"],
             "occurred_at": created["at"], "spec": job["spec"]}
    return queued(CREATED, cast(JobCreated, event))


def queued(name: str, event: Event) -> Job:
    """The job as a created (or retried) event queues it; the state an inference worker starts from."""
    at = event["occurred_at"]
    return {
        "id": event["job_id"], "status": Status.QUEUED, "version": event["version"], "attempt": 1,
        "spec": cast(JobCreated | JobRetried, event)["spec"], "created_at": at, "updated_at": at,
        "started_at": None, "diarized_at": None, "completed_at": None, "progress": 0.0, "failure_reason": None,
        "callback_failure_reason": None, "media_info": None, "speakers": None,
        "speech_seconds": None, "channels": [], "language": None, "language_probability": None, "result": None,
        "history": [_transition(name, event)],
    }
