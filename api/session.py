"""Browser sessions: an API key kept in a cookie, for the status pages (api/ui.py) and the API calls
they make.

POST /ui/login checks a key and keeps it in the `diarist_session` cookie: HttpOnly (no script
reads it), SameSite=Strict (no page or link of another site makes the browser send it), Path=/ (the
pages call /v1 with it), Secure when the page came over https. The pages themselves take only the
cookie; a surface that declares `cookie=True` (api/surface.py: the native API and its events) takes
it as well as a Bearer key (api/auth.py), and only for requests of the service's own pages:

- a request whose Origin names another host, or whose Sec-Fetch-Site says that another site
  made it (`cross-site` or `same-site`), is refused, whatever its method;
- a request that changes something (any method but GET, HEAD and OPTIONS) must name this host
  in Origin (or say `Sec-Fetch-Site: same-origin`) and carry `X-CSRF-Token`: the token of its
  key, an HMAC of the key that the pages are given in a meta tag and that no other site can
  read or compute.

A request with an `Authorization` header is not a cookie request: none of this applies to it.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "diarist_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"  # the same token, as a form field (the sign-out form)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_AGE = 12 * 3600  # seconds a sign-in lasts


def known(key: str, keys: Iterable[str]) -> bool:
    """Whether `key` is one of `keys`, compared in constant time (as bytes: any character may come)."""
    given = key.encode("utf-8", "surrogateescape")
    return bool(key) and any(hmac.compare_digest(given, k.encode()) for k in keys)


def cookie_key(request: Request, keys: Iterable[str]) -> str:
    """The API key of the request's session cookie when it is one of `keys`; "" otherwise."""
    key = request.cookies.get(COOKIE, "")
    return key if known(key, keys) else ""


def csrf_token(key: str) -> str:
    """The token that a state-changing request made with the session of `key` must carry."""
    return hmac.new(key.encode("utf-8", "surrogateescape"), b"diarist session csrf", hashlib.sha256).hexdigest()


def cross_site(request: Request) -> str | None:
    """Why the request is not one of this service's own pages' (None when it is, or when a safe
    request does not say where it comes from: a typed address, an old browser)."""
    origin = request.headers.get("origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc.lower() != _host(request)):
        return "the request comes from another origin"
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return "the request comes from another site"
    if request.method not in SAFE_METHODS and origin is None and site != "same-origin":
        return "a change made with the session cookie must say its Origin"
    return None


def refusal(request: Request, key: str, token: str | None = None) -> str | None:
    """Why a request authenticated by the session of `key` is refused; None when it may go on.
    `token` is the CSRF token the request carries, when not in the X-CSRF-Token header (a form field)."""
    if reason := cross_site(request):
        return reason
    if request.method in SAFE_METHODS:
        return None
    given = request.headers.get(CSRF_HEADER, "") if token is None else token
    if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), csrf_token(key).encode()):
        return f"a change made with the session cookie needs the page's {CSRF_HEADER}"
    return None


def secure(request: Request) -> bool:
    """Whether the page came over https (directly, or through a proxy that says so)."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


def sign_in(response: Response, request: Request, key: str) -> None:
    response.set_cookie(COOKIE, key, max_age=MAX_AGE, path="/", secure=secure(request), httponly=True,
                        samesite="strict")


def sign_out(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", secure=secure(request), httponly=True, samesite="strict")


def _host(request: Request) -> str:
    return request.headers.get("host", "").lower()
