"""Rev AI facades (/languageid/v1 and /speechtotext/v1): a thin translation onto the job service.

Rev's two job APIs share one shape: submit by JSON (`media_url` or `source_config`) or by a
multipart upload (`media` file and `options` JSON), read, list (a bare array, newest first,
paged by `starting_after`), delete once finished, and fetch the output. A language
identification job is a native LANGUAGE_IDENTIFICATION job; an async speech-to-text job is a
native TRANSCRIPTION job. Errors are Rev's problem documents: a `type` under Rev's error URIs,
`parameters` on a 400, `allowed_values` and `current_value` on a 409.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from diarist.api import guard, idempotency, ingest, writers
from diarist.api.options import loads, parse_options
from diarist.api.params import json_object
from diarist.api.problems import Problem, restated
from diarist.api.surface import Surface, job_service
from diarist.api.views import job_json
from diarist.streams.jobs.errors import NotFound
from diarist.streams.jobs.service import Query, cursor_at
from diarist.streams.jobs.types import Status

ERRORS = "https://www.rev.ai/api/v1/errors/"
REV_JSON = "application/vnd.rev.transcript.v1.0+json"
# What a client may send; a field outside these answers 400 rather than being ignored unheard.
COMMON_FIELDS = frozenset({"metadata", "callback_url", "notification_config", "delete_after_seconds"})
SOURCE_FIELDS = frozenset({"media_url", "source_config"})  # in a JSON body only: an upload is the source
SPEECH_FIELDS = frozenset({"language", "skip_diarization", "speakers_count", "custom_vocabularies"})
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


@dataclass(frozen=True)
class RevApi:
    """One of Rev's job APIs."""
    prefix: str
    task: str  # the native task its jobs run
    api: str  # options.api of its jobs
    job_type: str  # the job's `type`
    done: str  # the status of a job whose output is ready
    fields: frozenset[str]  # what it takes beyond COMMON_FIELDS and SOURCE_FIELDS


LANGUAGE_ID = RevApi("/languageid/v1", "LANGUAGE_IDENTIFICATION", "rev-languageid", "language_id", "completed",
                      frozenset())
SPEECH_TO_TEXT = RevApi("/speechtotext/v1", "TRANSCRIPTION", "rev-speechtotext", "async", "transcribed",
                         SPEECH_FIELDS)
BY_TASK = {surface.task: surface for surface in (LANGUAGE_ID, SPEECH_TO_TEXT)}

# Offers by media type, the default first (sent for no Accept header and for */*).
TRANSCRIPT_FORMATS: dict[str, Callable[[dict], Any]] = {REV_JSON: writers.rev_transcript,
                                                         "text/plain": writers.rev_text}
CAPTION_FORMATS: dict[str, Callable[[dict], Any]] = {"application/x-subrip": writers.srt, "text/vtt": writers.vtt}


# -- jobs as Rev shows them ----------------------------------------------------------------------

def rev_status(job: dict) -> str:
    status = _ended_as(job)
    if status in (Status.QUEUED, Status.IN_PROGRESS):
        return "in_progress"
    return BY_TASK[job["options"]["task"]].done if status == Status.COMPLETED else "failed"


def _ended_as(job: dict) -> str:
    """The job's native status; for a deleted job, the one it was deleted in (a callback may read a
    job that delete_after_seconds 0 already deleted, and still tells how it ended)."""
    if job["status"] != Status.DELETED:
        return Status(job["status"])
    return Status.COMPLETED if job["completed_at"] else Status.FAILED if job["failure_reason"] else Status.STOPPED


def rev_job(job: dict) -> dict[str, Any]:
    """The native job as Rev's job object; fields without a value are left out, as Rev does."""
    surface, options = BY_TASK[job["options"]["task"]], job["options"]
    status = rev_status(job)
    duration = job["media"].get("duration")
    body = {"id": job["id"], "status": status, "type": surface.job_type, "created_on": _rev_time(job["created_at"]),
            "completed_on": _rev_time(job["completed_at"] if status != "failed" else job["updated_at"]),
            "metadata": options["metadata"], "callback_url": next(iter(options["callback_urls"]), None),
            "delete_after_seconds": options["delete_after_seconds"], **_failure(job)}
    if surface is LANGUAGE_ID:
        body["processed_duration_seconds"] = duration
    else:
        body.update(name=job["filename"], duration_seconds=duration, language=options["language"] or job["language"],
                    skip_diarization=not options["diarization"], speakers_count=options["speakers_count"])
    return {name: value for name, value in body.items() if value is not None}


def _failure(job: dict) -> dict[str, str]:
    # A job that failed before its media was probed failed on the media; anything later (or a
    # stop, which Rev has no word for) is on the service's side.
    status = _ended_as(job)
    if status == Status.FAILED:
        failure = "invalid_media" if "duration" not in job["media"] else "internal_processing"
        return {"failure": failure, "failure_detail": job["failure_reason"]}
    if status == Status.STOPPED:
        return {"failure": "internal_processing", "failure_detail": "the job was stopped before it finished"}
    return {}


def _rev_time(at: str | None) -> str | None:
    return at and at.replace("+00:00", "Z")


def callback_body(job: dict, result: dict | None = None) -> dict:
    """What Rev POSTs to a job's notification URL when the job ends (the job alone: its output is fetched)."""
    return {"job": rev_job(job)}


# -- errors --------------------------------------------------------------------------------------

def _invalid_parameters(detail: str, parameters: dict[str, list[str]] | None = None) -> Problem:
    extra = {"parameters": parameters} if parameters else {}
    return Problem(400, detail, title="Your request parameters didn't validate", type=ERRORS + "invalid-parameters",
                   **extra)


def _invalid_field(name: str, message: str) -> Problem:
    return _invalid_parameters(f"{name}: {message}", {name: [message]})


def _not_found(job_id: str) -> Problem:
    return Problem(404, f"no job {job_id}", title="could not find job", type=ERRORS + "job-not-found")


def _invalid_state(status: str, allowed: list[str], action: str) -> Problem:
    return Problem(409, f"Job is in invalid state to {action}", title="Job is in invalid state",
                   type=ERRORS + "invalid-job-state", allowed_values=allowed, current_value=status)


# -- submission ----------------------------------------------------------------------------------

async def submit_job(request: Request, surface: RevApi) -> Response:
    jobs = job_service(request)
    key = idempotency.key_of(request, "rev")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await ingest.read_form(request, jobs.max_media_bytes)
        upload = form.get("media")
        if not isinstance(upload, UploadFile):
            raise _invalid_field("media", "The media file is required")
        options = _native_options(_options_part(form.get("options")), surface, uploaded=True)
        with restated(422, _invalid_parameters):
            await guard.check_job(jobs, options)
        media = await ingest.store_upload(upload, jobs)
        once = key.once(request, {"options": options, "media": idempotency.media_facts(media)}) if key else None
    elif content_type.startswith("application/json"):
        fields = await json_object(request)
        options = _native_options(fields, surface, uploaded=False)
        url, headers = _source(fields)
        once = key.once(request, {"options": options, "url": url, "headers": headers}) if key else None
        if once and (earlier := await jobs.earlier(once)):  # a repeat does not fetch the media again
            return JSONResponse(rev_job(job_json(earlier)))
        with restated(422, _invalid_parameters):
            await guard.check_job(jobs, options)
            media = await ingest.fetch(url, jobs, headers, "source_config" if "source_config" in fields else "media_url")
    else:
        raise Problem(415, "send JSON with a media_url or source_config, or multipart/form-data with a 'media' file")
    return JSONResponse(rev_job(job_json(await jobs.create(media, options, once))))


def _options_part(part: Any) -> dict:
    if part is None:
        return {}
    if not isinstance(part, str):
        raise _invalid_field("options", "must be JSON text, not a file")
    try:
        options = loads(part)  # bounded: numbers of too many digits read as infinite, depth limited
    except ValueError as exc:
        raise _invalid_field("options", f"is not valid JSON: {exc}") from None
    if not isinstance(options, dict):
        raise _invalid_field("options", "must be a JSON object")
    return options


def _native_options(fields: dict, surface: RevApi, uploaded: bool) -> dict[str, Any]:
    """The job's native options from Rev's submission fields; 400 for a field this surface lacks."""
    given = {name: value for name, value in fields.items() if value is not None}  # null reads as absent
    unknown = set(given) - COMMON_FIELDS - surface.fields - (set() if uploaded else SOURCE_FIELDS)
    if unknown:
        raise _invalid_parameters(f"not taken here: {', '.join(sorted(unknown))}",
                                  {name: ["This field is not supported"] for name in sorted(unknown)})
    callback_url, callback_headers = _notification(given)
    skip_diarization = given.get("skip_diarization", False)
    if not isinstance(skip_diarization, bool):
        raise _invalid_field("skip_diarization", "must be true or false")
    with restated(422, _invalid_parameters):
        return parse_options({
            "task": surface.task, "metadata": given.get("metadata"),
            "delete_after_seconds": given.get("delete_after_seconds"),
            "callback_urls": [callback_url] if callback_url else [], "callback_headers": callback_headers,
            "language": given.get("language"), "diarization": not skip_diarization,
            "speakers_count": given.get("speakers_count"), "hints": _phrases(given.get("custom_vocabularies", [])),
        }, api=surface.api)


def _notification(fields: dict) -> tuple[str | None, dict[str, str]]:
    """The callback URL and its headers: `notification_config`, or the older `callback_url`."""
    if "callback_url" in fields and "notification_config" in fields:
        raise _invalid_field("notification_config", "cannot be given with callback_url")
    if "notification_config" in fields:
        return _url_data(fields["notification_config"], "notification_config")
    return fields.get("callback_url"), {}


def _source(fields: dict) -> tuple[Any, dict[str, str] | None]:
    """The media URL and the headers to fetch it with: `source_config`, or the older `media_url`."""
    if "media_url" in fields and "source_config" in fields:
        raise _invalid_field("source_config", "cannot be given with media_url")
    if "source_config" in fields:
        return _url_data(fields["source_config"], "source_config")
    if "media_url" not in fields:
        raise _invalid_field("media_url", "The media_url field is required")
    return fields["media_url"], None


def _url_data(value: Any, name: str) -> tuple[Any, dict[str, str]]:
    """Rev's CustomerUrlData, {"url": ..., "auth_headers": {...}}."""
    if not isinstance(value, dict) or "url" not in value or set(value) - {"url", "auth_headers"}:
        raise _invalid_field(name, "must be an object with a url and optional auth_headers")
    headers = value.get("auth_headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise _invalid_field(name, "auth_headers must map header names to strings")
    return value["url"], headers


def _phrases(vocabularies: Any) -> list[str]:
    """custom_vocabularies, [{"phrases": [...]}, ...], as the native option `hints`."""
    if (not isinstance(vocabularies, list)
            or not all(isinstance(v, dict) and set(v) == {"phrases"} and isinstance(v["phrases"], list)
                       for v in vocabularies)):
        raise _invalid_field("custom_vocabularies", 'must be a list of {"phrases": [...]}')
    return [phrase for vocabulary in vocabularies for phrase in vocabulary["phrases"]]


# -- reading -------------------------------------------------------------------------------------

async def _job(request: Request, surface: RevApi) -> dict:
    """The job named in the path; 404 when there is none on this surface, or it was deleted."""
    job_id = request.path_params["id"]
    try:
        job = job_json(await job_service(request).read(job_id))
    except NotFound:
        raise _not_found(job_id) from None
    if job["status"] == Status.DELETED or job["options"]["task"] != surface.task:
        raise _not_found(job_id)
    return job


async def _finished_result(request: Request, surface: RevApi, output: str) -> dict:
    """The result document of the job in the path; 409 until the job is done."""
    job = await _job(request, surface)
    if (status := rev_status(job)) != surface.done:
        raise _invalid_state(status, [surface.done], f"obtain the {output}")
    return await job_service(request).result(job["id"])


async def get_job(request: Request, surface: RevApi) -> Response:
    return JSONResponse(rev_job(await _job(request, surface)))


async def list_jobs(request: Request, surface: RevApi) -> Response:
    """Newest first; `starting_after` is the id of the last job of the previous page."""
    limit = _limit(request.query_params.get("limit"))
    cursor = await _cursor(request, request.query_params.get("starting_after"))
    jobs: list[dict[str, Any]] = []
    # Deleted jobs are gone to Rev's clients: page on past them so that a page is only short at the end.
    while len(jobs) < limit:
        page = await job_service(request).page(Query(task=surface.task), limit=limit - len(jobs), cursor=cursor)
        jobs += [job_json(job) for job in page.jobs if job["status"] != Status.DELETED]
        cursor = page.next_cursor
        if cursor is None:
            break
    return JSONResponse([rev_job(job) for job in jobs])


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise _invalid_field("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


async def _cursor(request: Request, starting_after: str | None) -> str | None:
    if starting_after is None:
        return None
    try:
        return cursor_at(await job_service(request).read(starting_after))
    except NotFound:
        raise _invalid_field("starting_after", f"there is no job {starting_after}") from None


async def delete_job(request: Request, surface: RevApi) -> Response:
    job = await _job(request, surface)
    if (status := rev_status(job)) == "in_progress":
        raise _invalid_state(status, [surface.done, "failed"], "be deleted")
    await job_service(request).delete(job["id"])
    return Response(status_code=204)


async def get_language_result(request: Request) -> Response:
    result = await _finished_result(request, LANGUAGE_ID, "result")
    return JSONResponse({"top_language": result["language"], "language_confidences": result["language_confidences"]})


async def get_transcript(request: Request) -> Response:
    media_type = _negotiated(request, TRANSCRIPT_FORMATS)
    return _written(TRANSCRIPT_FORMATS[media_type](await _finished_result(request, SPEECH_TO_TEXT, "transcript")),
                    media_type)


async def get_captions(request: Request) -> Response:
    media_type = _negotiated(request, CAPTION_FORMATS)
    return _written(CAPTION_FORMATS[media_type](await _finished_result(request, SPEECH_TO_TEXT, "captions")),
                    media_type)


def _negotiated(request: Request, offers: dict[str, Any]) -> str:
    """The offer the Accept header ranks highest; the first offer when there is no header or it
    ranks */* highest; 406 when it accepts none of them."""
    accept = request.headers.get("accept", "").strip()
    if not accept:
        return next(iter(offers))
    for media_range in _ranked(accept):
        for offer in offers:
            if _matches(media_range, offer):
                return offer
    raise Problem(406, f"the Accept header must allow one of {', '.join(offers)}")


def _ranked(accept: str) -> list[str]:
    """The media ranges of an Accept header, most wanted first (by q, then as listed); q=0 left out."""
    ranges = []
    for part in accept.split(","):
        media_range, *params = (piece.strip().lower() for piece in part.split(";"))
        q = next((value for name, _, value in (p.partition("=") for p in params) if name.strip() == "q"), "1")
        try:
            weight = float(q)
        except ValueError:
            weight = 0.0  # a malformed q: the range counts for nothing
        if weight > 0:
            ranges.append((weight, media_range))
    return [media_range for _, media_range in sorted(ranges, key=lambda r: -r[0])]


def _matches(media_range: str, offer: str) -> bool:
    kind, _, subtype = media_range.partition("/")
    return media_range in ("*/*", offer) or (subtype == "*" and offer.startswith(f"{kind}/"))


def _written(body: Any, media_type: str) -> Response:
    if isinstance(body, dict):
        return JSONResponse(body, media_type=media_type)
    return Response(body, media_type=f"{media_type}; charset=utf-8")


def _routes(surface: RevApi) -> list[BaseRoute]:
    jobs = f"{surface.prefix}/jobs"
    return [Route(jobs, partial(submit_job, surface=surface), methods=["POST"]),
            Route(jobs, partial(list_jobs, surface=surface), methods=["GET"]),
            Route(f"{jobs}/{{id}}", partial(get_job, surface=surface), methods=["GET"]),
            Route(f"{jobs}/{{id}}", partial(delete_job, surface=surface), methods=["DELETE"])]


routes: list[BaseRoute] = [
    *_routes(LANGUAGE_ID),
    Route("/languageid/v1/jobs/{id}/result", get_language_result, methods=["GET"]),
    *_routes(SPEECH_TO_TEXT),
    Route("/speechtotext/v1/jobs/{id}/transcript", get_transcript, methods=["GET"]),
    Route("/speechtotext/v1/jobs/{id}/captions", get_captions, methods=["GET"]),
]


# -- OpenAPI -------------------------------------------------------------------------------------

# The shared Problem, with the members Rev adds to a 400 and a 409.
_PROBLEM = {"allOf": [{"$ref": "#/components/schemas/Problem"}], "properties": {
    "parameters": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}},
                   "description": "on a 400: what is wrong with each parameter named"},
    "allowed_values": {"type": "array", "items": {"type": "string"},
                       "description": "on a 409: the statuses that allow it"},
    "current_value": {"type": "string", "description": "on a 409: the job's status"}}}
_UNAUTHORIZED = {"$ref": "#/components/responses/Unauthorized"}
_URL_DATA = {"type": "object", "required": ["url"], "properties": {
    "url": {"type": "string", "format": "uri"},
    "auth_headers": {"type": "object", "additionalProperties": {"type": "string"}}}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "The job's id"}
_ACCEPT = {"name": "Accept", "in": "header", "required": False, "schema": {"type": "string"},
           "description": "The format wanted"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": _PROBLEM}}}


def _job_schema(surface: RevApi) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": {"type": "string"}, "status": {"enum": ["in_progress", surface.done, "failed"]},
        "type": {"const": surface.job_type}, "created_on": {"type": "string", "format": "date-time"},
        "completed_on": {"type": "string", "format": "date-time"}, "metadata": {"type": "string"},
        "callback_url": {"type": "string"}, "delete_after_seconds": {"type": "integer"},
        "failure": {"enum": ["invalid_media", "internal_processing"]}, "failure_detail": {"type": "string"}}
    if surface is LANGUAGE_ID:
        properties["processed_duration_seconds"] = {"type": "number"}
    else:
        properties.update(name={"type": "string"}, duration_seconds={"type": "number"}, language={"type": "string"},
                          skip_diarization={"type": "boolean"}, speakers_count={"type": "integer"})
    return {"type": "object", "required": ["id", "status", "type", "created_on"], "properties": properties}


def _submission_schema(surface: RevApi, uploaded: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "metadata": {"type": "string"}, "callback_url": {"type": "string", "format": "uri", "deprecated": True},
        "notification_config": _URL_DATA, "delete_after_seconds": {"type": "integer", "minimum": 0}}
    if not uploaded:
        properties.update(media_url={"type": "string", "format": "uri", "deprecated": True}, source_config=_URL_DATA)
    if surface is SPEECH_TO_TEXT:
        properties.update(
            language={"type": "string", "description": "ISO 639 code; absent: identified"},
            skip_diarization={"type": "boolean"}, speakers_count={"type": "integer", "minimum": 1},
            custom_vocabularies={"type": "array", "items": {"type": "object", "properties": {
                "phrases": {"type": "array", "items": {"type": "string"}}}}})
    return {"type": "object", "additionalProperties": False, "properties": properties}


def _paths(surface: RevApi) -> dict[str, Any]:
    job = {"application/json": {"schema": _job_schema(surface)}}
    name = surface.prefix.split("/")[1]
    return {
        f"{surface.prefix}/jobs": {
            "post": {
                "summary": f"Submit a {surface.job_type} job", "operationId": f"rev_{name}_submit",
                "parameters": [idempotency.PARAMETER],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _submission_schema(surface, uploaded=False)},
                    "multipart/form-data": {"schema": {"type": "object", "required": ["media"], "properties": {
                        "media": {"type": "string", "format": "binary"},
                        "options": _submission_schema(surface, uploaded=True)}}}}},
                "responses": {"200": {"description": "The job, in_progress", "content": job},
                              "400": _problem("Invalid parameters, media_url could not be fetched, or a malformed "
                                              "Idempotency-Key"),
                              "401": _UNAUTHORIZED, "413": _problem("The media is too large"),
                              "415": _problem("Neither JSON nor multipart"),
                              "422": _problem("An Idempotency-Key used for a different request")}},
            "get": {
                "summary": f"List {surface.job_type} jobs, newest first", "operationId": f"rev_{name}_list",
                "parameters": [
                    {"name": "limit", "in": "query", "description": "Jobs a page",
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
                    {"name": "starting_after", "in": "query", "schema": {"type": "string"},
                     "description": "The id of the last job of the previous page"}],
                "responses": {"200": {"description": "A bare array of jobs", "content": {"application/json": {
                    "schema": {"type": "array", "items": _job_schema(surface)}}}},
                    "400": _problem("Invalid limit or starting_after"), "401": _UNAUTHORIZED}}},
        f"{surface.prefix}/jobs/{{id}}": {
            "parameters": [_ID],
            "get": {"summary": "Get a job", "operationId": f"rev_{name}_get",
                    "responses": {"200": {"description": "The job", "content": job}, "401": _UNAUTHORIZED,
                                  "404": _problem("No such job, or it was deleted")}},
            "delete": {"summary": "Delete a finished job with its media and output",
                       "operationId": f"rev_{name}_delete",
                       "responses": {"204": {"description": "Deleted"}, "401": _UNAUTHORIZED,
                                     "404": _problem("No such job"), "409": _problem("The job is in_progress")}}},
    }


def _output(operation_id: str, summary: str, offers: dict[str, Any],
            json_schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The path item of a job's output, served in each of `offers` (by Accept where more than one)."""
    negotiated = len(offers) > 1
    content = {media_type: {"schema": json_schema if media_type.endswith("json") else {"type": "string"}}
               for media_type in offers}
    responses = {"200": {"description": f"{next(iter(offers))} unless Accept asks otherwise" if negotiated
                         else "The output", "content": content}, "401": _UNAUTHORIZED,
                 "404": _problem("No such job"), "409": _problem("The job is not done yet")}
    if negotiated:
        responses["406"] = _problem("Accept allows none of the offered formats")
    parameters = [_ID, _ACCEPT] if negotiated else [_ID]
    return {"parameters": parameters,
            "get": {"summary": summary, "operationId": operation_id, "responses": responses}}


_CONFIDENCES = {"type": "array", "items": {"type": "object", "properties": {
    "language": {"type": "string"}, "confidence": {"type": "number"}}}}
_TRANSCRIPT = {"type": "object", "properties": {"monologues": {"type": "array", "items": {
    "type": "object", "properties": {"speaker": {"type": "integer"}, "elements": {"type": "array", "items": {
        "type": "object", "properties": {"type": {"enum": ["text", "punct"]}, "value": {"type": "string"},
                                         "ts": {"type": "number"}, "end_ts": {"type": "number"},
                                         "confidence": {"type": "number"}}}}}}}}}

# OpenAPI 3.1 path items of these routes, merged into the service's document by api/openapi.py.
paths: dict[str, Any] = {
    **_paths(LANGUAGE_ID),
    "/languageid/v1/jobs/{id}/result": _output(
        "rev_languageid_result", "The identified language, most likely first", {"application/json": None},
        {"type": "object", "properties": {"top_language": {"type": "string"}, "language_confidences": _CONFIDENCES}}),
    **_paths(SPEECH_TO_TEXT),
    "/speechtotext/v1/jobs/{id}/transcript": _output(
        "rev_speechtotext_transcript", "The transcript, Rev JSON or text", TRANSCRIPT_FORMATS, _TRANSCRIPT),
    "/speechtotext/v1/jobs/{id}/captions": _output(
        "rev_speechtotext_captions", "Captions, SRT or WebVTT", CAPTION_FORMATS),
}

surface = Surface("Rev AI", "Rev AI language identification and asynchronous speech-to-text.", routes, paths,
                  apis=(LANGUAGE_ID.api, SPEECH_TO_TEXT.api), callback_body=callback_body)
