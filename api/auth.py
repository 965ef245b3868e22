"""API-key authentication, as each surface declares it (api/surface.py): `Authorization: Bearer
<key>` everywhere; on a surface with a query_key (DeepAffects' `apikey`), the key may come as that
query parameter instead, as its clients send it; on a surface with basic_password (the schema
registry), as the password of `Authorization: Basic`; on a surface with cookie (the native API and its
events), as the status pages' session cookie, for their own requests only (api/session.py); public
surfaces and the documentation take none."""
from __future__ import annotations

import base64
import binascii
import hmac

from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from diarist.api import session
from diarist.api.problems import problem_response
from diarist.api.surface import Surface

# The ASGI scope entry that holds the key a request was authenticated with: what limits
# (api/limits.py) and Idempotency-Keys (api/idempotency.py) are kept per.
API_KEY = "diarist.api_key"


class BearerAuth:
    def __init__(self, app: ASGIApp, keys: frozenset[str], surfaces: tuple[Surface, ...],
                 public_routes: list[BaseRoute]) -> None:
        self.app = app
        self.keys = keys
        # (routes, the query parameter that may carry the key, or "" for none; None: no key needed,
        #  the surface)
        self.rules: list[tuple[list[BaseRoute], str | None, Surface | None]] = [
            *((surface.routes, None if surface.public else surface.query_key or "", surface) for surface in surfaces),
            (public_routes, None, None),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        query_param, surface = self._rule(scope)
        if query_param is None:
            return await self.app(scope, receive, send)
        request = Request(scope)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if surface is not None and surface.cookie and not token and (cookie := session.cookie_key(request, self.keys)):
            # The status pages' session (api/session.py): their own requests only.
            if reason := session.refusal(request, cookie):
                return await problem_response(request, 403, reason)(scope, receive, send)
            scope[API_KEY] = cookie
            return await self.app(scope, receive, send)
        query_key = request.query_params.get(query_param, "") if query_param else ""
        bearer_known = scheme.lower() == "bearer" and self._known(token.strip())
        basic_key = _basic_password(token) if surface and surface.basic_password and scheme.lower() == "basic" else ""
        if not (bearer_known or (query_key and self._known(query_key)) or (basic_key and self._known(basic_key))):
            detail = ("send an API key as 'Authorization: Bearer <key>'" if not (token or query_key)
                      else "the API key is not valid")
            if surface is not None and surface.unauthorized is not None:
                response = surface.unauthorized(request, detail)
            else:
                response = problem_response(request, 401, detail, headers={"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        scope[API_KEY] = token.strip() if bearer_known else query_key if query_key and self._known(query_key) else basic_key
        await self.app(scope, receive, send)

    def _rule(self, scope: Scope) -> tuple[str | None, Surface | None]:
        """The rule of the surface whose route takes this path: "" (Bearer only), a query
        parameter's name, or None where no key is needed; and that surface. A path no route takes
        needs a key, so that what the service serves is not probed without one."""
        for routes, query_param, surface in self.rules:
            if any(_takes(route, scope) for route in routes):
                return query_param, surface
        return "", None

    def _known(self, token: str) -> bool:
        return any(hmac.compare_digest(token, key) for key in self.keys)


def _basic_password(credentials: str) -> str:
    """The password of HTTP Basic credentials (base64 of user:password); "" when they are not."""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[2]


def _takes(route: BaseRoute, scope: Scope) -> bool:
    if isinstance(route, Mount):
        return scope["path"].startswith(route.path + "/")
    if isinstance(route, Route):
        return route.path_regex.match(scope["path"]) is not None
    return route.matches(scope)[0] != Match.NONE
