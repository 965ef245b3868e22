"""Taking media in: a multipart upload or a media_url, streamed into the blob store.

Options are checked here too, before any byte is stored, so that a bad request costs nothing.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from diarist.streams.blobs import LocalBlobStore, TooLarge
from diarist.api.options import ENGINES as ENGINES  # JobOptions live in api/options.py; these names stay
from diarist.api.options import TASKS as TASKS  # importable from here for the modules that use them
from diarist.api.options import loads, parse_options
from diarist.api.problems import Problem

CHUNK = 1 << 16


@dataclass(frozen=True)
class Media:
    filename: str
    md5: str
    size: int
    content_type: str | None


async def from_upload(request: Request, blobs: LocalBlobStore, key: str, max_bytes: int) -> tuple[Media, dict]:
    """A multipart/form-data body: file part `media`, optional JSON part `options`."""
    form = await read_form(request, max_bytes)
    upload = form.get("media")
    if not isinstance(upload, UploadFile):
        raise Problem(400, "the multipart body needs a file part named 'media'")
    options = _options_part(form.get("options"))
    return await store_upload(upload, blobs, key, max_bytes), options


async def from_url(body: dict, blobs: LocalBlobStore, key: str, max_bytes: int,
                   timeout: float) -> tuple[Media, dict]:
    """A JSON body with `media_url` (http or https) and optional `options`."""
    unknown = set(body) - {"media_url", "options"}
    if unknown:
        raise Problem(422, f"unknown fields: {', '.join(sorted(unknown))}")
    options = parse_options(body.get("options"))
    return await fetch(body.get("media_url"), blobs, key, max_bytes, timeout), options


async def read_form(request: Request, max_bytes: int, max_fields: int = 8) -> FormData:
    """The multipart form, refused early when it says it is larger than the service takes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + CHUNK:
        raise _too_large(max_bytes)
    try:
        return await request.form(max_files=1, max_fields=max_fields)
    except Exception as exc:  # python-multipart and Starlette raise several kinds
        raise Problem(400, f"the multipart body could not be read: {exc}") from None


async def store_upload(upload: UploadFile, blobs: LocalBlobStore, key: str, max_bytes: int) -> Media:
    """An uploaded file part, into the blob store."""
    try:
        md5, size = await blobs.write_stream(key, _upload_chunks(upload), max_bytes)
    except TooLarge:
        raise _too_large(max_bytes) from None
    finally:
        await upload.close()
    if size == 0:
        blobs.delete(key)
        raise Problem(400, "the media file is empty")
    filename = PurePosixPath(upload.filename or "media").name
    return Media(filename, md5, size, upload.content_type)


async def fetch(url: Any, blobs: LocalBlobStore, key: str, max_bytes: int, timeout: float,
                headers: dict[str, str] | None = None) -> Media:
    """The media at an http or https URL (sent with these headers), streamed into the blob store."""
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise Problem(422, "media_url must be an http or https URL")
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
            async with client.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    raise Problem(422, f"media_url answered HTTP {response.status_code}")
                md5, size = await blobs.write_stream(key, response.aiter_bytes(CHUNK), max_bytes)
                content_type = response.headers.get("content-type")
    except TooLarge:
        raise _too_large(max_bytes) from None
    except httpx.TimeoutException:
        raise Problem(422, f"media_url did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise Problem(422, f"media_url could not be fetched: {exc}") from None
    if size == 0:
        blobs.delete(key)
        raise Problem(422, "media_url gave an empty body")
    filename = PurePosixPath(urlsplit(url).path).name or "media"
    return Media(filename, md5, size, content_type)


def _options_part(part: Any) -> dict:
    if part is None:
        return parse_options(None)
    text = part if isinstance(part, str) else None
    if text is None:
        raise Problem(400, "the 'options' part must be JSON text, not a file")
    try:
        raw = loads(text)
    except ValueError as exc:  # bad JSON, or nested too deeply
        raise Problem(400, f"the 'options' part is not valid JSON: {exc}") from None
    return parse_options(raw)


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK):
        yield chunk


def _too_large(max_bytes: int) -> Problem:
    return Problem(413, f"the media is larger than the {max_bytes} bytes this service takes")
