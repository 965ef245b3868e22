"""What the job service refuses, in its own words: the edge maps each to an HTTP problem in one
table (api/problems.py), and a peer's refusal crosses back as the same error."""
from __future__ import annotations


class JobError(Exception):
    """A request about jobs that cannot be done as asked; str() says why, for a person."""


class NotFound(JobError, LookupError):
    pass


class Conflict(JobError):
    """The state machine refuses the change, or the result is not there yet; `status` is the
    job's status that refused it."""

    def __init__(self, reason: str, status: str | None = None) -> None:
        super().__init__(reason)
        self.status = status


class Gone(JobError):
    """The job was deleted, and its media and result with it."""


class NotYetVisible(JobError, TimeoutError):
    """The event is written, but the fold has not taken it within the wait."""


class JobExists(JobError):
    """The job id asked for names a job that another request made (DeepAffects' request_id reused)."""


class IdempotencyMismatch(JobError):
    """The Idempotency-Key already made a job, for a request other than this one."""


class MediaTooLarge(JobError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the media is larger than the {max_bytes} bytes this service takes")
        self.max_bytes = max_bytes


class MediaEmpty(JobError):
    pass


class MediaUnavailable(JobError):
    """A media URL could not be fetched; str() says so without telling what answered there."""


class InvalidCursor(JobError, ValueError):
    pass
