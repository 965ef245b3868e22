"""How jobs look in the native API."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from diarist.streams.jobs.lifecycle import Job


def iso(at: datetime | None) -> str | None:
    return at.isoformat(timespec="milliseconds") if at else None


def job_json(job: Job) -> dict[str, Any]:
    spec, options = job["spec"], job["spec"]["options"]
    media = {"md5": spec["media"]["md5"], "size": spec["media"]["size"],
             "content_type": spec["media"]["content_type"], **(job["media_info"] or {})}
    return {
        "id": job["id"],
        "status": job["status"],
        "version": job["version"],
        "attempt": job["attempt"],
        "filename": spec["filename"],
        "created_at": iso(job["created_at"]),
        "started_at": iso(job["started_at"]),
        "diarized_at": iso(job["diarized_at"]),
        "completed_at": iso(job["completed_at"]),
        "updated_at": iso(job["updated_at"]),
        "progress": round(job["progress"], 1),
        "options": options,
        "media": media,
        "speakers": job["speakers"],
        "speech_seconds": job["speech_seconds"],
        "channels": job["channels"],
        "language": job["language"],
        "language_probability": job["language_probability"],
        "failure_reason": job["failure_reason"],
        "callback_failure_reason": job["callback_failure_reason"],
        "history": [{"version": t["version"], "event": t["event"], "at": iso(t["at"])} for t in job["history"]],
    }
