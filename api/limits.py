"""Per-API-key limits, in each jobs worker process: a request rate (a token bucket) and a number of
uploads in progress at once. Over either, a request is answered 429 with Retry-After and a problem.

The middleware runs inside BearerAuth (api/auth.py), which puts the key a request was
authenticated with into its scope; a request without one (the documentation, /healthz) is not
limited, nor are the routes of a surface that declares `limited=False` (the peers' internal
routes: the request that caused them was counted where it came in). An upload is a request to a
route that creates jobs (api/idempotency.py finds them), from its first byte until its answer is
sent. Limits are per process: docs/api.md says what that means for a cluster.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from diarist.api.auth import API_KEY
from diarist.api.idempotency import create_routes
from diarist.api.problems import problem_response
from diarist.api.surface import Surface


@dataclass
class TokenBucket:
    """`rate` tokens a second, up to `burst`; a request takes one."""
    rate: float
    burst: int
    tokens: float
    at: float  # when `tokens` was counted

    @classmethod
    def full(cls, rate: float, burst: int, now: float) -> TokenBucket:
        return cls(rate, burst, float(burst), now)

    def take(self, now: float) -> float:
        """Takes a token: 0.0 when there was one, else the seconds until there will be one."""
        self.tokens = min(float(self.burst), self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class Limits:
    def __init__(self, app: ASGIApp, *, surfaces: tuple[Surface, ...], rate: float, burst: int, max_uploads: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.rate, self.burst, self.max_uploads = rate, max(1, burst), max_uploads
        self.clock = clock
        self.uploads_routes = create_routes(surfaces)
        self.unlimited_routes = [route for surface in surfaces if not surface.limited for route in surface.routes]
        self.buckets: dict[str, TokenBucket] = {}  # by API key: the keys are the service's own, a fixed set
        self.uploads: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = scope.get(API_KEY) if scope["type"] == "http" else None
        if key is None or _any_takes(self.unlimited_routes, scope, Match.PARTIAL):
            return await self.app(scope, receive, send)
        if self.rate > 0:
            bucket = self.buckets.setdefault(key, TokenBucket.full(self.rate, self.burst, self.clock()))
            if wait := bucket.take(self.clock()):
                return await _too_many(scope, receive, send, wait,
                                       f"more than {self.rate:g} requests a second (bursts of {self.burst}) with this "
                                       "API key")
        if self.max_uploads <= 0 or not _any_takes(self.uploads_routes, scope, Match.FULL):
            return await self.app(scope, receive, send)
        if self.uploads[key] >= self.max_uploads:
            return await _too_many(scope, receive, send, 1.0,
                                   f"this API key already has {self.max_uploads} uploads in progress here")
        self.uploads[key] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.uploads[key] -= 1
            if not self.uploads[key]:
                del self.uploads[key]


def _any_takes(routes: list[BaseRoute], scope: Scope, at_least: Match) -> bool:
    """Whether one of the routes takes the request: its path (PARTIAL), or its path and method (FULL)."""
    return any(route.matches(scope)[0].value >= at_least.value for route in routes)


async def _too_many(scope: Scope, receive: Receive, send: Send, wait: float, detail: str) -> None:
    retry_after = max(1, math.ceil(wait))
    response = problem_response(Request(scope), 429, f"{detail}; try again in {retry_after} s",
                                headers={"Retry-After": str(retry_after)})
    await response(scope, receive, send)
