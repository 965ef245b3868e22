"""The service's OpenAPI 3.1 document: every surface's `paths`, merged, with the shared components.

Each surface module documents its own routes next to them (`paths`, beside `routes`), so that a
route and its description change together; this module only puts them into one document and
tags each operation with its surface, which is how Swagger UI groups them. tests/test_openapi.py
checks that the routed and the documented paths are the same.
"""
from __future__ import annotations

from functools import cache
from importlib.metadata import version
from typing import Any

from diarist.api.options import SCHEMA as JOB_OPTIONS  # the options as sent, and as a job keeps them:
from diarist.api.options import STORED_SCHEMA as STORED_OPTIONS  # both from api/options.py's definition
from diarist.api.surface import Surface
from diarist.streams.jobs.types import Status

OPENAPI = "3.1.0"
METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
BEARER = "bearer"
APIKEY = "apikey"  # DeepAffects clients send their key as ?apikey=, as DeepAffects takes it
BASIC = "basic"  # schema registry clients send the key as the password of HTTP Basic

def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


_TIME = {"type": "string", "format": "date-time"}
_SECONDS = {"type": "number", "description": "seconds from the start of the media"}

CHANNEL = {
    "type": "object",
    "required": ["channel", "duration", "speech", "silence", "redundant_of"],
    "properties": {
        "channel": {"type": "integer", "minimum": 0},
        "duration": {"type": "number"},
        "speech": {"type": "number", "description": "seconds of speech found"},
        "silence": {"type": "number"},
        "redundant_of": {"type": ["integer", "null"],
                         "description": "the channel this one repeats; a repeated channel is processed once"},
    },
}

JOB = {
    "type": "object",
    "required": ["id", "status", "version", "attempt", "filename", "created_at", "updated_at", "progress",
                 "options", "media", "history"],
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string", "enum": list(Status)},
        "version": {"type": "integer", "description": "how many transitions the job has been through"},
        "attempt": {"type": "integer", "description": "grows by one with each retry"},
        "filename": {"type": "string"},
        "created_at": _TIME,
        "started_at": _nullable(_TIME),
        "diarized_at": _nullable(_TIME),
        "completed_at": _nullable(_TIME),
        "updated_at": _TIME,
        "progress": {"type": "number", "minimum": 0, "maximum": 100,
                     "description": "percent of the audio transcribed"},
        "options": STORED_OPTIONS,
        "media": {"type": "object", "description": "the upload's facts; the probe's (format, codec, sample_rate, "
                                                   "channels, bit_rate, duration) once the job is diarized",
                  "properties": {"md5": {"type": "string"}, "size": {"type": "integer"},
                                 "content_type": {"type": ["string", "null"]}}},
        "speakers": {"type": ["integer", "null"]},
        "speech_seconds": {"type": ["number", "null"]},
        "channels": {"type": "array", "items": {"$ref": "#/components/schemas/Channel"}},
        "language": {"type": ["string", "null"]},
        "language_probability": {"type": ["number", "null"]},
        "failure_reason": {"type": ["string", "null"]},
        "callback_failure_reason": {"type": ["string", "null"]},
        "history": {"type": "array", "items": {
            "type": "object", "properties": {"version": {"type": "integer"}, "event": {"type": "string"}, "at": _TIME}}},
    },
}

WORD = {
    "type": "object",
    "required": ["word", "start", "end"],
    "properties": {"word": {"type": "string"}, "start": _SECONDS, "end": _SECONDS,
                   "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
}

RESULT = {
    "type": "object",
    "description": "A COMPLETED job's result. A language identification job's has no segments.",
    "required": ["job_id", "task", "language", "duration", "speakers", "channels", "segments"],
    "properties": {
        "job_id": {"type": "string"},
        "task": {"type": "string", "enum": ["TRANSCRIPTION", "LANGUAGE_IDENTIFICATION"]},
        "language": {"type": ["string", "null"]},
        "language_probability": {"type": ["number", "null"]},
        "language_confidences": {
            "type": "array", "description": "every language the model knows, most likely first, when identified",
            "items": {"type": "object", "properties": {"language": {"type": "string"}, "confidence": {"type": "number"}}}},
        "duration": {"type": "number"},
        "speakers": {"type": "integer", "description": "numbered in order of first speech, across channels"},
        "channels": {"type": "array", "items": {"$ref": "#/components/schemas/Channel"}},
        "segments": {"type": "array", "items": {
            "type": "object", "required": ["channel", "speaker", "start", "end", "text"],
            "properties": {"channel": {"type": "integer"}, "speaker": {"type": "integer"}, "start": _SECONDS,
                           "end": _SECONDS, "text": {"type": "string"},
                           "words": {"type": "array", "items": {"$ref": "#/components/schemas/Word"}}}}},
    },
}

PROBLEM = {
    "type": "object",
    "description": "An error, as RFC 9457 (application/problem+json) has it; some carry more members.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri-reference", "examples": ["about:blank"]},
        "title": {"type": "string", "examples": ["Conflict"]},
        "status": {"type": "integer", "examples": [409]},
        "detail": {"type": "string", "examples": ["cannot retry the job: a QUEUED job cannot be retried"]},
        "instance": {"type": "string", "format": "uri-reference"},
    },
}

COMPONENTS = {
    "securitySchemes": {
        BEARER: {"type": "http", "scheme": "bearer", "description": "an API key of this service (DIARIST_API_KEYS)"},
        APIKEY: {"type": "apiKey", "in": "query", "name": "apikey",
                 "description": "an API key of this service, where the DeepAffects API takes it"},
        # the status pages' sign-in (api/session.py), taken by the native API and its events for the pages' own requests
        "session": {"type": "apiKey", "in": "cookie", "name": "diarist_session",
                    "description": "the status pages' session: the API key given at /ui/login"},
        BASIC: {"type": "http", "scheme": "basic",
                "description": "an API key of this service as the password (any user name), where the schema registry takes it"},
    },
    "schemas": {"Job": JOB, "JobOptions": JOB_OPTIONS, "Channel": CHANNEL, "Result": RESULT, "Word": WORD,
                "Problem": PROBLEM},
    "responses": {
        "Unauthorized": {
            "description": "no API key, or one this service does not know",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}},
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        },
        "TooManyRequests": {
            "description": "over the API key's request rate or concurrent uploads (api/limits.py)",
            "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1},
                                        "description": "seconds to wait before trying again"}},
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        },
    },
}
TOO_MANY_REQUESTS = {"$ref": "#/components/responses/TooManyRequests"}


@cache
def document(surfaces: tuple[Surface, ...]) -> dict[str, Any]:
    """The whole service's document: every surface's paths, tagged with the surface, in its order."""
    return {
        "openapi": OPENAPI,
        "info": {"title": "diarist", "version": version("diarist"),
                 "summary": "Speech transcription jobs: diarized, word-timed transcripts and language identification."},
        "servers": [{"url": "/", "description": "this service"}],
        "security": [{BEARER: []}],
        "tags": [{"name": surface.tag, "description": surface.description} for surface in surfaces],
        "paths": _paths(surfaces),
        "components": COMPONENTS,
    }


def document_under(surfaces: tuple[Surface, ...], prefix: str, title: str) -> dict[str, Any]:
    """The document of one surface: only the paths under `prefix`."""
    whole = document(surfaces)
    paths = {path: item for path, item in whole["paths"].items() if path.startswith(prefix + "/")}
    return {**whole, "info": {**whole["info"], "title": title}, "paths": paths}


def _paths(surfaces: tuple[Surface, ...]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for surface in surfaces:
        for path, item in surface.paths.items():
            if path in merged:
                raise ValueError(f"the {surface.tag} surface documents {path}, which another surface documents")
            merged[path] = {key: _operation(surface, value) if key in METHODS else value
                            for key, value in item.items()}
    return merged


def _operation(surface: Surface, operation: dict[str, Any]) -> dict[str, Any]:
    """The operation tagged with its surface; with a 429 answer where its API key's limits apply."""
    operation = {"tags": [surface.tag], **operation}
    if surface.limited and not surface.public and "429" not in operation["responses"]:
        operation["responses"] = {**operation["responses"], "429": TOO_MANY_REQUESTS}
    return operation
