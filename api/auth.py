"""Bearer-key authentication for everything but the health check and the API's documentation."""
from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from .problems import problem_response

OPEN_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/trd/v3/openapi.json", "/trd/v3/docs"})
OPEN_PREFIXES = ("/docs/",)  # Swagger UI's files


class BearerAuth:
    def __init__(self, app: ASGIApp, keys: frozenset[str]) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["path"].startswith(OPEN_PREFIXES):
            return await self.app(scope, receive, send)
        request = Request(scope)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self._known(token.strip()):
            detail = "send an API key as 'Authorization: Bearer <key>'" if not token else "the API key is not valid"
            response = problem_response(request, 401, detail, headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        await self.app(scope, receive, send)

    def _known(self, token: str) -> bool:
        return any(hmac.compare_digest(token, key) for key in self.keys)
