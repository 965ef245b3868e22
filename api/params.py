"""Reading request parameters and bodies, with a 4xx problem for anything malformed."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request

from diarist.api.options import loads, valid_unicode
from diarist.api.problems import Problem


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; 400 otherwise."""
    try:
        body = loads(await request.body())  # numbers too large for anything here read as infinite, depth bounded
    except ValueError as exc:  # bad JSON, bad UTF-8, nested too deeply
        raise Problem(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Problem(400, "the body must be a JSON object")
    if not valid_unicode(body):
        raise Problem(400, "the body is not valid Unicode: a string holds a lone surrogate")
    return body


def int_param(raw: str, name: str, low: int, high: int | None = None) -> int:
    """A query parameter as a whole number from low (to high); 422 otherwise."""
    try:
        value = int(raw)
    except ValueError:
        raise Problem(422, f"{name} must be a whole number") from None
    if value < low or (high is not None and value > high):
        raise Problem(422, f"{name} must be from {low}" + (f" to {high}" if high is not None else ""))
    return value


def datetime_param(raw: str | None, name: str) -> datetime | None:
    """A query parameter as an ISO 8601 date-time with an offset; 422 otherwise."""
    if raw is None:
        return None
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Problem(422, f"{name} must be an ISO 8601 date-time") from None
    if at.tzinfo is None:
        raise Problem(422, f"{name} needs a UTC offset, such as 2026-01-31T12:00:00Z")
    return at
