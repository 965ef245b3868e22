"""Errors as RFC 9457 problem documents (application/problem+json), and the one table that maps
the job service's errors to them."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match, Route

from diarist.streams.jobs import errors

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger(__name__)


class Problem(Exception):
    def __init__(self, status: int, detail: str, *, title: str | None = None,
                 headers: dict[str, str] | None = None, **extra: object) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers
        self.extra = extra


# The job service's errors as HTTP problems: every surface answers them so, unless it restates
# a status in its vendor's words (`restated`).
DOMAIN_STATUS: dict[type[errors.JobError], int] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.JobExists: 409,
    errors.IdempotencyMismatch: 422,
    errors.Gone: 410,
    errors.MediaTooLarge: 413,
    errors.MediaEmpty: 400,
    errors.MediaUnavailable: 422,
    errors.InvalidCursor: 422,
    errors.NotYetVisible: 503,
}


def problem_of(exc: errors.JobError) -> Problem:
    status = next(code for kind, code in DOMAIN_STATUS.items() if isinstance(exc, kind))
    extra: dict[str, object] = {}
    headers = None
    if isinstance(exc, errors.Conflict) and exc.status is not None:
        extra["job_status"] = exc.status
    if isinstance(exc, errors.NotYetVisible):
        headers = {"Retry-After": "1"}
    return Problem(status, str(exc), headers=headers, **extra)


@contextmanager
def restated(status: int, as_problem: Callable[[str], Problem]) -> Iterator[None]:
    """A Problem of `status` raised inside comes out as `as_problem(detail)`: how a vendor states
    it (Rev and DeepAffects answer 400 where the core answers 422)."""
    try:
        yield
    except (Problem, errors.JobError) as exc:
        problem = problem_of(exc) if isinstance(exc, errors.JobError) else exc
        if problem.status != status:
            raise problem from None
        raise as_problem(problem.detail) from None


class ProblemResponse(JSONResponse):
    """A problem document, in ASCII: whatever a detail quotes from the request (a lone surrogate of
    a JSON string included) can be written, so that a refusal never becomes a server error."""
    media_type = MEDIA_TYPE

    def render(self, content: object) -> bytes:
        return json.dumps(content, separators=(",", ":"), default=str).encode("ascii")


def problem_response(request: Request, status: int, detail: str, title: str | None = None,
                     headers: dict[str, str] | None = None, **extra: object) -> JSONResponse:
    body = {"type": "about:blank", "title": title or HTTPStatus(status).phrase, "status": status,
            "detail": detail, "instance": instance(request), **extra}
    return ProblemResponse(body, status_code=status, headers=headers)


async def on_problem(request: Request, exc: Problem) -> JSONResponse:
    return problem_response(request, exc.status, exc.detail, exc.title, exc.headers, **exc.extra)


async def on_job_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.JobError)
    return await on_problem(request, problem_of(exc))


async def on_http_exception(request: Request, exc: HTTPException) -> JSONResponse:
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else {
        404: "nothing is served at this path", 405: f"{request.method} is not allowed here",
    }.get(exc.status_code, exc.detail)
    headers = exc.headers
    if exc.status_code == 405:  # Starlette names the methods of one route: Allow names every route's at the path
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return problem_response(request, exc.status_code, detail, headers=headers)


def instance(request: Request) -> str:
    """The request's path as a URI reference: the server gives it percent-decoded, so that it may
    hold spaces, quotes, '?', '#' or any other character."""
    return quote(str(request.scope.get("path", "")), safe=_PATH_CHARACTERS)


_PATH_CHARACTERS = "/!$&'()*+,;=:@-._~"  # RFC 3986 pchar and "/", less the unreserved letters quote keeps anyway


def allowed_methods(request: Request) -> list[str]:
    """The methods of every route at the request's path, as an Allow header lists them."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches({**request.scope, "method": next(iter(route.methods))})
            if match is Match.FULL:
                methods |= route.methods
    return sorted(methods)


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem_response(request, 500, "the server failed to answer this request; it is logged")


EXCEPTION_HANDLERS = {Problem: on_problem, errors.JobError: on_job_error, HTTPException: on_http_exception,
                      Exception: on_unexpected}
