"""Logs: DIARIST_LOG_FORMAT=json writes one JSON object a line, with the job's id wherever there is one.

The job is the one whose work the logging code does: `job_context(job_id)` sets it for a block
(the fold of an event, a run of the pipeline, a callback's delivery, a request about a job), and
every line logged inside carries it, whichever module logs; `extra={"job_id": ...}` names one
for a single line. Faust configures logging when its worker starts, so the configuration is
handed to it (`logging_config`, used by cli/main.py) rather than set beside it.
"""
from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

JOB_ID: ContextVar[str | None] = ContextVar("diarist_job_id", default=None)

# LogRecord's own attributes: anything else on a record came as `extra` and is written out.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


@contextmanager
def job_context(job_id: str | None) -> Iterator[None]:
    """Every line logged inside the block (in this task) carries `job_id`."""
    token = JOB_ID.set(job_id)
    try:
        yield
    finally:
        JOB_ID.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, job_id where there is
    one, the exception's traceback where there is one, and what came as `extra`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None) or JOB_ID.get()
        if job_id:
            entry["job_id"] = job_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(log_format: str, level: str) -> dict[str, Any] | None:
    """The dictConfig for Faust's worker (`logging_config`); None for Faust's own plain lines."""
    if log_format in ("", "text", "plain"):
        return None
    if log_format != "json":
        raise ValueError(f"DIARIST_LOG_FORMAT is json or text, not {log_format!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        # stderr, as Faust's own handler: its worker redirects stdout into the log
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json"}},
        "root": {"level": logging.getLevelName(level_number(level)), "handlers": ["default"]},
    }


def level_number(level: str) -> int:
    """DIARIST_LOG_LEVEL (debug, info, warn, warning, error ...) as logging's number."""
    name = level.upper()
    number = logging.getLevelName("WARNING" if name == "WARN" else name)
    return number if isinstance(number, int) else logging.WARNING
