"""Errors as RFC 9457 problem documents (application/problem+json)."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

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


@contextmanager
def restated(status: int, as_problem: Callable[[str], Problem]) -> Iterator[None]:
    """A Problem of `status` raised inside comes out as `as_problem(detail)`: how a vendor states
    it (Rev and DeepAffects answer 400 where the core answers 422)."""
    try:
        yield
    except Problem as exc:
        if exc.status != status:
            raise
        raise as_problem(exc.detail) from None


def problem_response(request: Request, status: int, detail: str, title: str | None = None,
                     headers: dict[str, str] | None = None, **extra: object) -> JSONResponse:
    body = {"type": "about:blank", "title": title or HTTPStatus(status).phrase, "status": status,
            "detail": detail, "instance": request.url.path, **extra}
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


async def on_problem(request: Request, exc: Problem) -> JSONResponse:
    return problem_response(request, exc.status, exc.detail, exc.title, exc.headers, **exc.extra)


async def on_http_exception(request: Request, exc: HTTPException) -> JSONResponse:
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else {
        404: "nothing is served at this path", 405: f"{request.method} is not allowed here",
    }.get(exc.status_code, exc.detail)
    return problem_response(request, exc.status_code, detail, headers=exc.headers)


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem_response(request, 500, "the server failed to answer this request; it is logged")


EXCEPTION_HANDLERS = {Problem: on_problem, HTTPException: on_http_exception, Exception: on_unexpected}
