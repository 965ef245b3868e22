"""The shape every API surface declares: the native API and each vendor facade.

A surface is its routes and their OpenAPI path items, how its clients authenticate, and how its
callbacks speak. api/app.py holds the one list of surfaces, and the routes, the OpenAPI
document, authentication and callbacks are all made from it: a new facade is one new module that
declares a `surface`, and one line in that list.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from diarist.streams.jobs.service import JobService

JSON = dict[str, Any]
# (the job as the native API shows it, the result document of a COMPLETED job or None) -> the body
CallbackBody = Callable[[JSON, JSON | None], JSON]


@dataclass(frozen=True, eq=False)  # one surface is one value, hashed by identity
class Surface:
    tag: str  # how the OpenAPI document and Swagger UI group its operations
    description: str
    routes: list[BaseRoute]
    paths: dict[str, Any]  # OpenAPI 3.1 path items of `routes`, kept beside them
    # The values of options.api that jobs made through this surface carry, so that their
    # callbacks speak this surface's language.
    apis: tuple[str, ...] = ()
    # Clients authenticate with `Authorization: Bearer <key>`; or, where query_key is set, with the
    # key as that query parameter; a public surface takes no key.
    query_key: str | None = None
    public: bool = False
    # The key may also come as the status pages' session cookie, for their own requests only
    # (api/session.py): the native API and its events, which the pages call.
    cookie: bool = False
    # The key may also come as the password of HTTP Basic (any user name), as schema registry
    # clients send it (api/schema_registry.py).
    basic_password: bool = False
    # How a request without a valid key is answered, where the surface's clients read another
    # shape than a problem document: (request, detail) -> the 401 response.
    unauthorized: Callable[[Request, str], Response] | None = None
    # Its requests count against their API key's limits (api/limits.py); the peers' internal calls do not.
    limited: bool = True
    callback_body: CallbackBody | None = None  # None: the native body
    callback_url: Callable[[str, str], str] = field(default=lambda url, job_id: url)  # (url, job id) -> target
    docs_prefix: str | None = None  # the surface also serves its own document and /docs under this prefix


def job_service(request: Request) -> JobService:
    """The job service of the worker whose edge took the request."""
    jobs: JobService = request.app.state.jobs
    return jobs
