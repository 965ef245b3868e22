"""Taking media in: a multipart upload or a media_url, streamed into the blob store.

Options are checked here too, before any byte is stored, so that a bad request costs nothing:
against their schema, and by the URL guard (api/guard.py). A text part must be UTF-8.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import PurePosixPath
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from diarist.api import guard
from diarist.api.options import loads, parse_options
from diarist.api.problems import Problem
from diarist.streams.jobs.errors import MediaTooLarge
from diarist.streams.jobs.service import JobService, StoredMedia

CHUNK = 1 << 16


async def from_upload(request: Request, jobs: JobService) -> tuple[StoredMedia, dict[str, Any]]:
    """A multipart/form-data body: file part `media`, optional JSON part `options`."""
    form = await read_form(request, jobs.max_media_bytes)
    upload = form.get("media")
    if not isinstance(upload, UploadFile):
        raise Problem(400, "the multipart body needs a file part named 'media'")
    options = _options_part(form.get("options"))
    await guard.check_job(jobs, options)
    return await store_upload(upload, jobs), options


async def from_url(body: dict[str, Any], jobs: JobService) -> tuple[StoredMedia, dict[str, Any]]:
    """A JSON body with `media_url` (http or https) and optional `options`."""
    unknown = set(body) - {"media_url", "options"}
    if unknown:
        raise Problem(422, f"unknown fields: {', '.join(sorted(unknown))}")
    options = parse_options(body.get("options"))
    await guard.check_job(jobs, options)
    return await fetch(body.get("media_url"), jobs), options


async def read_form(request: Request, max_bytes: int, max_fields: int = 8) -> FormData:
    """The multipart form, refused early when it says it is larger than the service takes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + CHUNK:
        raise MediaTooLarge(max_bytes)
    try:
        async with aclosing(request.stream()) as stream:
            return await _Utf8Parts(request.headers, stream, max_files=1, max_fields=max_fields).parse()
    except Exception as exc:  # python-multipart and Starlette raise several kinds
        raise Problem(400, f"the multipart body could not be read: {exc}") from None


class _Utf8Parts(MultiPartParser):
    """Starlette's multipart parser, refusing a text part that is not UTF-8 (Starlette would read
    it as latin-1 instead, so that an options part in another encoding meant something else)."""

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is not None:
            return super().on_part_end()
        try:
            text = bytes(part.data).decode("utf-8")
        except UnicodeDecodeError:
            raise MultiPartException(f"the part {part.field_name!r} is not UTF-8 text") from None
        self.items.append((part.field_name, text))


async def store_upload(upload: UploadFile, jobs: JobService) -> StoredMedia:
    """An uploaded file part, into the blob store."""
    try:
        filename = PurePosixPath(upload.filename or "media").name
        return await jobs.store_media(_upload_chunks(upload), filename, upload.content_type)
    finally:
        await upload.close()


async def fetch(url: Any, jobs: JobService, headers: dict[str, str] | None = None, name: str = "media_url",
                job_id: str | None = None) -> StoredMedia:
    """The media at an http or https URL (sent with these headers), into the blob store; 422 when
    the URL guard refuses the URL or the headers, or the fetch fails."""
    url = await guard.checked_url(jobs, url, name)
    if headers:
        headers = guard.checked_headers(headers, f"the headers of {name}")
    return await jobs.fetch_media(url, headers, job_id, name)


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
