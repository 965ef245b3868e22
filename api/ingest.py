"""Taking media in: a multipart upload or a media_url, streamed into the blob store.

Options are checked here too, before any byte is stored, so that a bad request costs nothing.
"""
from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from diarist.streams.blobs import LocalBlobStore, TooLarge
from diarist.streams.inference.weights import MODELS

from diarist.api.problems import Problem

CHUNK = 1 << 16
OPTION_FIELDS = {"tag", "language", "model", "callback_urls", "callback_headers", "metadata", "task", "engine",
                 "diarization", "speakers_count", "min_speakers", "max_speakers", "clustering_threshold", "hints",
                 "delete_after_seconds"}
TASKS = ("TRANSCRIPTION", "LANGUAGE_IDENTIFICATION")
ENGINES = ("faster-whisper", "openai-whisper")
MAX_SPEAKERS = 20
MAX_RETENTION_SECONDS = 365 * 24 * 3600
LANGUAGE = re.compile(r"^[a-z]{2,3}$")


@dataclass(frozen=True)
class Media:
    filename: str
    md5: str
    size: int
    content_type: str | None


def parse_options(raw: Any, api: str = "diarist") -> dict[str, Any]:
    """JobOptions from what the client sent; 422 for anything this API does not take.

    `api` names the surface the job comes through (a facade passes its own), so that what the
    job later says of itself, such as its callbacks, speaks that surface's language."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise Problem(422, "options must be a JSON object")
    unknown = set(raw) - OPTION_FIELDS
    if unknown:
        raise Problem(422, f"unknown options: {', '.join(sorted(unknown))}")
    tag, language, model = raw.get("tag"), raw.get("language"), raw.get("model")
    callback_urls, metadata = raw.get("callback_urls") or [], raw.get("metadata")
    if tag is not None and (not isinstance(tag, str) or len(tag) > 256):
        raise Problem(422, "tag must be a string of at most 256 characters")
    if language in ("auto", ""):
        language = None
    if language is not None and (not isinstance(language, str) or not LANGUAGE.match(language)):
        raise Problem(422, "language must be an ISO 639 code such as 'en', or 'auto'")
    if model is not None and model not in MODELS:
        raise Problem(422, f"unknown model {model!r}; known: {', '.join(MODELS)}")
    if (not isinstance(callback_urls, list)
            or not all(isinstance(u, str) and urlsplit(u).scheme in ("http", "https") for u in callback_urls)):
        raise Problem(422, "callback_urls must be a list of http or https URLs")
    callback_headers = raw.get("callback_headers") or {}
    if (not isinstance(callback_headers, dict) or len(callback_headers) > 20
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in callback_headers.items())):
        raise Problem(422, "callback_headers must be an object of at most 20 header names and string values")
    if metadata is not None and not isinstance(metadata, str):
        metadata = json.dumps(metadata)
    if metadata is not None and len(metadata) > 4096:
        raise Problem(422, "metadata must be at most 4096 characters")
    retention = raw.get("delete_after_seconds")
    if retention is not None and (not isinstance(retention, int) or isinstance(retention, bool)
                                  or not 0 <= retention <= MAX_RETENTION_SECONDS):
        raise Problem(422, f"delete_after_seconds must be a whole number from 0 to {MAX_RETENTION_SECONDS}")
    return {"api": api, "tag": tag, "language": language, "model": model, "callback_urls": callback_urls,
            "callback_headers": callback_headers, "metadata": metadata, "delete_after_seconds": retention,
            **_speech_options(raw)}


def _speech_options(raw: dict[str, Any]) -> dict[str, Any]:
    task = str(raw.get("task") or "transcription").upper()
    if task not in TASKS:
        raise Problem(422, f"task must be one of {', '.join(t.lower() for t in TASKS)}")
    engine = raw.get("engine")
    if engine is not None and engine not in ENGINES:
        raise Problem(422, f"engine must be one of {', '.join(ENGINES)}")
    diarization = raw.get("diarization", True)
    if not isinstance(diarization, bool):
        raise Problem(422, "diarization must be true or false")
    counts = {name: raw.get(name) for name in ("speakers_count", "min_speakers", "max_speakers")}
    for name, value in counts.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 1 <= value <= MAX_SPEAKERS):
            raise Problem(422, f"{name} must be a whole number from 1 to {MAX_SPEAKERS}")
    if counts["min_speakers"] and counts["max_speakers"] and counts["min_speakers"] > counts["max_speakers"]:
        raise Problem(422, "min_speakers is more than max_speakers")
    threshold = raw.get("clustering_threshold")
    if threshold is not None and (not isinstance(threshold, (int, float)) or not 0 < threshold < 2):
        raise Problem(422, "clustering_threshold must be a cosine distance between 0 and 2")
    hints = raw.get("hints") or []
    if (not isinstance(hints, list) or len(hints) > 200
            or not all(isinstance(h, str) and 0 < len(h) <= 100 for h in hints)):
        raise Problem(422, "hints must be a list of at most 200 words or phrases")
    if task == "LANGUAGE_IDENTIFICATION" and raw.get("model") == "tiny.en":
        raise Problem(422, "language identification needs a multilingual model, such as base")
    return {"task": task, "engine": engine, "diarization": diarization, **counts,
            "clustering_threshold": float(threshold) if threshold is not None else None, "hints": hints}


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
        return parse_options(json.loads(text))
    except json.JSONDecodeError as exc:
        raise Problem(400, f"the 'options' part is not valid JSON: {exc}") from None


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK):
        yield chunk


def _too_large(max_bytes: int) -> Problem:
    return Problem(413, f"the media is larger than the {max_bytes} bytes this service takes")
