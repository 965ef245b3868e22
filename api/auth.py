"""Bearer-key authentication for everything but the health check and the API's documentation; on
the DeepAffects paths the key may come as the `apikey` query parameter instead, as DeepAffects'
clients send it."""
from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from diarist.api import deepaffects
from diarist.api.problems import problem_response

OPEN_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/trd/v3/openapi.json", "/trd/v3/docs"})
OPEN_PREFIXES = ("/docs/",)  # Swagger UI's files
QUERY_KEY_PATHS = frozenset(route.path for route in deepaffects.routes)


class BearerAuth:
    def __init__(self, app: ASGIApp, keys: frozenset[str]) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["path"].startswith(OPEN_PREFIXES):
            return await self.app(scope, receive, send)
        request = Request(scope)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        query_key = request.query_params.get("apikey", "") if scope["path"] in QUERY_KEY_PATHS else ""
        bearer_known = scheme.lower() == "bearer" and self._known(token.strip())
        if not (bearer_known or (query_key and self._known(query_key))):
            detail = ("send an API key as 'Authorization: Bearer <key>'" if not (token or query_key)
                      else "the API key is not valid")
            response = problem_response(request, 401, detail, headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        await self.app(scope, receive, send)

    def _known(self, token: str) -> bool:
        return any(hmac.compare_digest(token, key) for key in self.keys)
