"""The live status pages: /ui (the jobs) and /ui/jobs/{id} (one job), in plain HTML, JavaScript and
CSS shipped in the package (api/ui/), with no build step and nothing loaded from elsewhere.

The pages read and change jobs through the native API and follow them through its server-sent
events (api/events.py), signed in by the session cookie that POST /ui/login sets (api/session.py).
The surface is public to BearerAuth because the pages answer a browser that is not signed in
with the sign-in form rather than a 401; every page but the form and its assets checks the
session cookie itself here.
"""
from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from diarist.api import session, writers
from diarist.api.problems import Problem
from diarist.api.surface import Surface, job_service
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.types import Status

FILES = Path(__file__).with_name("ui")
ASSET_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
LOGIN = "/ui/login"
# No script, style, frame or form target but this service's own.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _keys(request: Request) -> frozenset[str]:
    keys: frozenset[str] = request.app.state.worker.settings.api_keys()
    return keys


def signed_in(request: Request) -> str:
    """The key of the request's session, when it has one and comes from this service's pages; "" otherwise."""
    key = session.cookie_key(request, _keys(request))
    return key if key and session.cross_site(request) is None else ""


def _page(name: str, status_code: int = 200, **fields: str) -> HTMLResponse:
    text = Template((FILES / name).read_text()).substitute({k: escape(v) for k, v in fields.items()})
    return HTMLResponse(text, status_code=status_code, headers=PAGE_HEADERS)


def _to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{LOGIN}?next={quote(target, safe='')}", status_code=303)


def _local(target: str) -> str:
    """Where to go after signing in: a page of this service's /ui, else /ui."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not re.fullmatch(r"/ui(/[^\\]*)?", parts.path) or target.startswith("//"):
        return "/ui"
    return target


async def jobs_page(request: Request) -> Response:
    if not (key := signed_in(request)):
        return _to_login(request)
    from diarist.api.app import BY_API  # the list of surfaces imports this module
    return _page("jobs.html", csrf=session.csrf_token(key), statuses=json.dumps(list(Status)),
                 apis=json.dumps(sorted(BY_API)))


async def job_page(request: Request) -> Response:
    if not (key := signed_in(request)):
        return _to_login(request)
    return _page("job.html", csrf=session.csrf_token(key), job_id=request.path_params["job_id"],
                 formats=json.dumps(list(writers.FORMATS)))


async def login_page(request: Request) -> Response:
    return _page("login.html", next=_local(request.query_params.get("next", "/ui")), error="")


async def login(request: Request) -> Response:
    if reason := session.cross_site(request):  # no other site signs a browser in with its own key
        raise Problem(403, reason)
    form = await _form(request)
    key, target = str(form.get("key", "")).strip(), _local(str(form.get("next", "/ui")))
    if not session.known(key, _keys(request)):
        return _page("login.html", status_code=401, next=target, error="That API key is not valid.")
    response = RedirectResponse(target, status_code=303)
    session.sign_in(response, request, key)
    return response


async def logout(request: Request) -> Response:
    if key := session.cookie_key(request, _keys(request)):
        form = await _form(request)
        if reason := session.refusal(request, key, str(form.get(session.CSRF_FIELD, ""))):
            raise Problem(403, reason)
    response = RedirectResponse(LOGIN, status_code=303)
    session.sign_out(response, request)
    return response


async def _form(request: Request) -> Any:
    try:
        return await request.form(max_files=0, max_fields=10)
    except Exception as exc:
        raise Problem(400, f"not a form: {exc}") from None


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    path = FILES / name
    if "/" in name or path.suffix not in ASSET_TYPES or not path.is_file():
        raise Problem(404, f"no asset {name!r}")
    return FileResponse(path, media_type=ASSET_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


async def media(request: Request) -> Response:
    """The job's media, for the page's player: ranges too, so that it can seek."""
    if not signed_in(request):
        raise Problem(401, f"sign in at {LOGIN}")
    jobs = job_service(request)
    job = await jobs.read(request.path_params["job_id"])
    if job["status"] == lc.DELETED:
        raise Problem(410, "the job was deleted, and its media with it")
    ref = job["spec"]["media"]
    content_type = ref["content_type"] or "application/octet-stream"
    return await media_response(request, jobs.blobs, ref["key"], content_type, job["spec"]["filename"])


async def media_response(request: Request, blobs: Any, key: str, content_type: str, filename: str) -> Response:
    """An object of the blob store, with Range support: a local file through Starlette's
    FileResponse (single and multiple ranges, If-Range); any other store by its size and ranged
    stream, one range at a time."""
    headers = {"Cache-Control": "private, no-cache", "Content-Disposition": f"inline; filename*=utf-8''{quote(filename)}"}
    if callable(path_of := getattr(blobs, "path", None)):
        path = path_of(key)
        if not path.is_file():
            raise Problem(404, "the media is missing from the blob store")
        return FileResponse(path, media_type=content_type, headers=headers)
    try:
        size = await blobs.size(key)
    except LookupError:
        raise Problem(404, "the media is missing from the blob store") from None
    headers["Accept-Ranges"] = "bytes"
    try:
        span = byte_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        raise Problem(416, f"the media has {size} bytes", headers={"Content-Range": f"bytes */{size}"}) from None
    if span is None:
        return StreamingResponse(blobs.stream(key), media_type=content_type,
                                 headers={**headers, "Content-Length": str(size)})
    start, end = span
    return StreamingResponse(blobs.stream(key, start, end + 1), status_code=206, media_type=content_type,
                             headers={**headers, "Content-Length": str(end + 1 - start),
                                      "Content-Range": f"bytes {start}-{end}/{size}"})


class RangeNotSatisfiable(ValueError):
    pass


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range (first, last, inclusive) a Range header asks of an object of `size` bytes;
    None to send it whole (no header, one that is not a single bytes range: RFC 9110 lets a server
    ignore it). RangeNotSatisfiable when the range lies past the end."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or not (match[1] or match[2]):
        return None
    if not match[1]:  # the last N bytes
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - suffix), size - 1
    start = int(match[1])
    if match[2] and int(match[2]) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(header)
    return start, min(int(match[2]), size - 1) if match[2] else size - 1


routes: list[BaseRoute] = [
    Route("/ui", jobs_page, methods=["GET"]),
    Route("/ui/jobs/{job_id}", job_page, methods=["GET"]),
    Route("/ui/jobs/{job_id}/media", media, methods=["GET"]),
    Route(LOGIN, login_page, methods=["GET"]),
    Route(LOGIN, login, methods=["POST"]),
    Route("/ui/logout", logout, methods=["POST"]),
    Route("/ui/assets/{name}", asset, methods=["GET"]),
]

_HTML = {"text/html": {"schema": {"type": "string"}}}
_SESSION = [{"session": []}]
_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_TO_LOGIN = {"description": "not signed in: to the sign-in form", "headers": {"Location": {"schema": {"type": "string"}}}}
_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}

paths = {
    "/ui": {"get": {"summary": "The jobs, newest first, live", "operationId": "ui_jobs", "security": _SESSION,
                    "parameters": [{"name": name, "in": "query", "schema": {"type": "string"}}
                                   for name in ("status", "tag", "api")],
                    "responses": {"200": {"description": "the page", "content": _HTML}, "303": _TO_LOGIN}}},
    "/ui/jobs/{job_id}": {"parameters": [_JOB_ID], "get": {
        "summary": "One job, live: progress, timings, media, speakers, transcript, player and commands",
        "operationId": "ui_job", "security": _SESSION,
        "responses": {"200": {"description": "the page", "content": _HTML}, "303": _TO_LOGIN}}},
    "/ui/jobs/{job_id}/media": {"parameters": [_JOB_ID], "get": {
        "summary": "The job's media, for the page's player (Range requests answered 206)",
        "operationId": "ui_job_media", "security": _SESSION,
        "parameters": [{"name": "Range", "in": "header", "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "the media", "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
            "206": {"description": "the range asked for", "content": {"*/*": {"schema": {"type": "string",
                                                                                          "format": "binary"}}}},
            "401": {"description": "not signed in", "content": _PROBLEM},
            "404": {"description": "no such job, or its media is missing", "content": _PROBLEM},
            "410": {"description": "the job was deleted, and its media with it", "content": _PROBLEM},
            "416": {"description": "the range lies past the end of the media", "content": _PROBLEM}}}},
    LOGIN: {
        "get": {"summary": "The sign-in form", "operationId": "ui_login_form", "security": [],
                "parameters": [{"name": "next", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the form", "content": _HTML}}},
        "post": {"summary": "Sign in with an API key: sets the session cookie", "operationId": "ui_login",
                 "security": [],
                 "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
                     "type": "object", "required": ["key"],
                     "properties": {"key": {"type": "string"}, "next": {"type": "string"}}}}}},
                 "responses": {
                     "303": {"description": "signed in: `Set-Cookie: diarist_session=…; HttpOnly; SameSite=Strict; "
                                            "Path=/`, and on to `next`",
                             "headers": {"Set-Cookie": {"schema": {"type": "string"}},
                                         "Location": {"schema": {"type": "string"}}}},
                     "401": {"description": "the form again: the key is not valid", "content": _HTML},
                     "403": {"description": "posted from another site", "content": _PROBLEM}}},
    },
    "/ui/logout": {"post": {
        "summary": "Sign out: clears the session cookie", "operationId": "ui_logout", "security": [],
        "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "properties": {"csrf_token": {"type": "string"}}}}}},
        "responses": {"303": {"description": "signed out, to the sign-in form",
                              "headers": {"Set-Cookie": {"schema": {"type": "string"}}}},
                      "403": {"description": "from another site, or without the page's CSRF token", "content": _PROBLEM}}}},
    "/ui/assets/{name}": {"get": {
        "summary": "The pages' scripts and stylesheet", "operationId": "ui_asset", "security": [],
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "the file", "content": {
            "text/css": {"schema": {"type": "string"}}, "text/javascript": {"schema": {"type": "string"}}}},
            "404": {"description": "no such asset", "content": _PROBLEM}}}},
}

surface = Surface("ui", "The live status pages, for a browser signed in with an API key.", routes, paths,
                  public=True)
