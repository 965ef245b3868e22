"""The types of job state: what the Avro schemas in schemas/*.avsc hold, as Python sees them.

Each record schema has a TypedDict of the same name and fields (tests/test_types.py checks them
against the .avsc files): a `timestamp-millis` is a tz-aware `datetime`, a union with null is
`X | None`, an Avro enum is a `StrEnum`. A StrEnum member equals the plain string that the Avro
reader gives back ("QUEUED" == Status.QUEUED) and JSON-encodes as that string, so that jobs read
from a topic, from the jobs table or from JSON compare with the members as they are.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal, TypeAlias, TypedDict, get_args


class Status(StrEnum):
    """A job's status (diarist.JobStatus), as ARCHITECTURE.md's state machine has it."""

    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    DELETED = "DELETED"


class Task(StrEnum):
    """What a job is asked to do (diarist.JobTask)."""

    TRANSCRIPTION = "TRANSCRIPTION"
    LANGUAGE_IDENTIFICATION = "LANGUAGE_IDENTIFICATION"


# The ASR engines (streams/inference/asr.py) a job may ask for; JobOptions.engine holds one, or null.
Engine = Literal["faster-whisper", "openai-whisper"]
ENGINES: tuple[Engine, ...] = get_args(Engine)


# -- records --------------------------------------------------------------------------------------

class MediaRef(TypedDict):
    """Claim check: where the media lies in the blob store (diarist.MediaRef)."""

    key: str
    md5: str
    size: int
    content_type: str | None


class MediaInfo(TypedDict):
    """What probing the media found (diarist.MediaInfo)."""

    format: str
    codec: str
    sample_rate: int
    channels: int
    bit_rate: int | None
    duration: float


class ChannelInfo(TypedDict):
    """One channel of the media as the pipeline found it (diarist.ChannelInfo)."""

    channel: int
    duration: float
    speech: float
    silence: float
    redundant_of: int | None


class ResultRef(TypedDict):
    """Where the result document lies in the blob store (diarist.ResultRef)."""

    key: str
    md5: str
    size: int


class JobOptions(TypedDict):
    """The options a job took, in their stored form: every field present (diarist.JobOptions).

    api/options.py makes them from what a client sends."""

    tag: str | None
    language: str | None
    model: str | None
    callback_urls: list[str]
    metadata: str | None
    task: Task
    engine: str | None
    diarization: bool
    speakers_count: int | None
    min_speakers: int | None
    max_speakers: int | None
    clustering_threshold: float | None
    hints: list[str]
    delete_after_seconds: int | None
    callback_headers: dict[str, str]
    api: str
    batch_size: int | None


class Idempotency(TypedDict):
    """The Idempotency-Key a job was created with, as hashes (diarist.Idempotency)."""

    key: str
    fingerprint: str


class JobSpec(TypedDict):
    """What a job was asked to do; it never changes over the life of the job (diarist.JobSpec)."""

    filename: str
    media: MediaRef
    options: JobOptions
    idempotency: Idempotency | None


class Transition(TypedDict):
    """One entry of a job's history (diarist.Transition)."""

    version: int
    event: str
    event_id: str
    at: datetime


class Job(TypedDict):
    """A job's state: the fold of its lifecycle events (diarist.Job)."""

    id: str
    status: Status
    version: int
    attempt: int
    spec: JobSpec
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    diarized_at: datetime | None
    completed_at: datetime | None
    progress: float
    failure_reason: str | None
    callback_failure_reason: str | None
    media_info: MediaInfo | None
    speakers: int | None
    speech_seconds: float | None
    channels: list[ChannelInfo]
    language: str | None
    language_probability: float | None
    result: ResultRef | None
    history: list[Transition]


# -- lifecycle events -----------------------------------------------------------------------------

class EventFields(TypedDict):
    """The fields every lifecycle event starts with."""

    event_id: str
    job_id: str
    version: int
    occurred_at: datetime


class JobCreated(EventFields):
    spec: JobSpec


class JobStarted(EventFields):
    worker: str


class JobDiarized(EventFields):
    media: MediaInfo
    speakers: int
    speech_seconds: float
    channels: list[ChannelInfo]


class JobProgress(EventFields):
    percent: float


class JobCompleted(EventFields):
    result: ResultRef
    language: str | None
    language_probability: float | None


class JobFailed(EventFields):
    reason: str


class JobStopped(EventFields):
    reason: str | None


class JobRetried(EventFields):
    spec: JobSpec


class JobDeleted(EventFields):
    pass


class JobCallbackFailed(EventFields):
    url: str
    reason: str


LifecycleEvent: TypeAlias = (JobCreated | JobStarted | JobDiarized | JobProgress | JobCompleted | JobFailed | JobStopped
                               | JobRetried | JobDeleted | JobCallbackFailed)


# -- the other messages ---------------------------------------------------------------------------

class MediaSubmitted(TypedDict):
    """An external producer asks for a job on media it already put in the blob store."""

    request_id: str
    spec: JobSpec
    occurred_at: datetime


class InferenceHeartbeat(TypedDict):
    """An inference worker says it is alive and which model it holds."""

    worker: str
    model: str
    loaded: bool
    device: str
    at: datetime
