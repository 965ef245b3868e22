"""CPqD Transcrição de Diálogos v3 facade (/trd/v3): a thin translation onto the job service.

CPqD's requests (multipart `upload_file`, a `config` in JSON or in its `key=value` string form,
`callback_urls`, `tag`) become native options; native jobs and results go back as CPqD's job
object and segments. The status words are the native ones. docs/api.md says what maps to what.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from diarist.api import guard, idempotency, ingest, writers
from diarist.api.options import loads, parse_options
from diarist.api.params import datetime_param, int_param
from diarist.api.problems import Problem
from diarist.api.surface import Surface, job_service
from diarist.api.views import job_json
from diarist.streams.inference.diarization import DEFAULT_THRESHOLD
from diarist.streams.inference.media import MediaError, probe
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.service import Query, StoredMedia
from diarist.streams.jobs.types import Status

SYNC_MAX_SECONDS = 120.0  # CPqD's limit for synchronous transcription
SYNC_WAIT_SECONDS = 600.0  # after this a synchronous request answers the job as it is
KEPT_FOR_REPEATS = 24 * 3600  # how long a synchronous job made with an Idempotency-Key keeps its result
API = "cpqd"  # options.api of its jobs, and the scope of its Idempotency-Keys
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
DEFAULT_LM = "builtin:slm/general"
STATUSES = tuple(Status)
MAX_FORM_FIELDS = 64  # config and callback_urls may each be repeated
# Commas separate `key=value` pairs in one string-form config field, but not the words of a value.
PAIR_SEPARATOR = re.compile(r",(?=\s*[\w.]+\s*=)")
# A CPqD hint word may carry a weight and a pronunciation, "mexirica:1.8 [mixirica]"; Whisper takes the word.
HINT = re.compile(r"\s*(.*?)\s*(?::\s*[\d.]+)?\s*(?:\[[^\]]*\])?\s*")


# -- config in --------------------------------------------------------------------------------

def _model(lm: Any) -> str | None:
    # CPqD's language models are Portuguese ones diarist does not have: any builtin one means
    # the worker's default model; a diarist model name ("base", "tiny.en") picks that model.
    if not isinstance(lm, str):
        raise Problem(422, "recognition.lm must be a string")
    return None if lm.startswith("builtin:") else lm


def _hint_words(value: Any) -> list[str]:
    words = value.split(",") if isinstance(value, str) else value
    if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
        raise Problem(422, "recognition.hints.words must be a list of words")
    return [HINT.fullmatch(word).group(1) for word in words if word.strip()]


def _as_is(value: Any) -> Any:
    return value


# CPqD config key, dotted as its string form writes it -> (native option, value translation).
CONFIG: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "diarization.clustering.enabled": ("diarization", _as_is),
    "diarization.clustering.threshold": ("clustering_threshold", _as_is),
    "diarization.clustering.speakers": ("speakers_count", _as_is),
    "diarization.min_speakers": ("min_speakers", _as_is),
    "diarization.max_speakers": ("max_speakers", _as_is),
    "recognition.lm": ("model", _model),
    "recognition.hints.words": ("hints", _hint_words),
}


def _options(config_parts: list[Any], tag: str | None, callback_urls: list[str]) -> dict[str, Any]:
    """Native options from the `config` fields, the tag and the callback URLs; 400 or 422 if wrong."""
    config: dict[str, Any] = {}
    for part in config_parts:
        for key, value in _config_items(part):
            if key in config:
                raise Problem(422, f"config sets {key} more than once")
            config[key] = value
    unknown = sorted(set(config) - set(CONFIG))
    if unknown:
        raise Problem(422, f"unknown config keys: {', '.join(unknown)}; this service takes {', '.join(CONFIG)}")
    raw = {CONFIG[key][0]: CONFIG[key][1](value) for key, value in config.items()}
    return parse_options({**raw, "tag": tag, "callback_urls": callback_urls}, api="cpqd")


def _config_items(part: Any) -> list[tuple[str, Any]]:
    """One `config` field: a JSON object, or CPqD's string form `a.b=value[,c.d=value]`."""
    if not isinstance(part, str):
        raise Problem(400, "the 'config' part must be text (JSON or key=value), not a file")
    text = part.strip()
    if not text:
        return []
    if text.startswith("{"):
        try:
            return list(_flattened(loads(text)))
        except (ValueError, RecursionError) as exc:  # bad JSON, or nested too deeply
            raise Problem(400, f"the 'config' part is not valid JSON: {exc}") from None
    items = []
    for pair in PAIR_SEPARATOR.split(text):
        key, equals, value = pair.partition("=")
        if not equals:
            raise Problem(400, f"config {pair!r} is neither JSON nor key=value")
        items.append((key.strip(), _scalar(value.strip())))
    return items


def _flattened(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    # {"recognition": {"hints.words": [...]}}, as CPqD writes it, flattens to recognition.hints.words.
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flattened(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _scalar(text: str) -> Any:
    """A string-form value: True or False (as CPqD writes them), a number, or the text itself."""
    if text in ("True", "False"):
        return text == "True"
    try:
        return loads(text)  # a number of too many digits reads as infinite, which every option refuses
    except ValueError:
        return text


def _callback_urls(fields: list[Any]) -> list[str]:
    """`callback_urls` repeated, or one field of comma-separated URLs, as CPqD takes them."""
    if not all(isinstance(field, str) for field in fields):
        raise Problem(400, "callback_urls must be text, not a file")
    return [url.strip() for field in fields for url in field.split(",") if url.strip()]


# -- media in ---------------------------------------------------------------------------------

async def _form(request: Request) -> FormData:
    return await ingest.read_form(request, job_service(request).max_media_bytes, MAX_FORM_FIELDS)


async def _stored(request: Request, form: FormData) -> StoredMedia:
    upload = form.get("upload_file")
    if not isinstance(upload, UploadFile):
        raise Problem(400, "the multipart body needs a file part named 'upload_file'")
    return await ingest.store_upload(upload, job_service(request))


async def _refuse_unless_short(request: Request, media: StoredMedia) -> None:
    """Erases the stored media and refuses it when it cannot be read or lasts too long for a
    synchronous transcription."""
    jobs = job_service(request)
    try:
        with await jobs.blobs.open_reader(media.ref["key"]) as reader:  # ranged reads of the header, not a copy
            duration = (await asyncio.to_thread(probe, reader))["duration"]
    except MediaError as exc:
        problem = Problem(422, str(exc))
    else:
        if duration <= SYNC_MAX_SECONDS:
            return
        problem = Problem(413, f"the media lasts {duration:.1f} s; synchronous transcription takes at most "
                               f"{SYNC_MAX_SECONDS:g} s: create a job with /trd/v3/job/create instead")
    await jobs.discard(media)
    raise problem


# -- jobs out ---------------------------------------------------------------------------------

def job_object(job: dict[str, Any]) -> dict[str, Any]:
    """A native job (api/views.py) as CPqD's job object. As CPqD does, times not yet reached and
    an absent tag are left out, and no failure reason is an empty string."""
    options = job["options"]
    times = ("created_at", "started_at", "diarized_at", "completed_at")
    return {
        "id": job["id"], "filename": job["filename"], "status": job["status"],
        **{name: job[name] for name in times if job[name]},
        **({"tag": options["tag"]} if options["tag"] is not None else {}),
        "callback_urls": options["callback_urls"],
        "callback_failure_reason": job["callback_failure_reason"] or "",
        "failure_reason": job["failure_reason"] or "",
        "media": _media(job),
        "config": _config(options),
    }


def _media(job: dict[str, Any]) -> dict[str, Any]:
    media = job["media"]
    out = {"md5": media["md5"], "size": media["size"]}
    if "format" not in media:  # the probe facts come with diarization
        return out
    out["input"] = {"sample_rate": media["sample_rate"], "channels": media["channels"], "bit_rate": media["bit_rate"],
                    "format": media["format"], "codec": media["codec"],
                    # nominal, half the sample rate, as CPqD gives 4000 for 8 kHz audio
                    "bandwidth": media["sample_rate"] / 2}
    out["output"] = {"redundant_channel": any(c["redundant_of"] is not None for c in job["channels"]),
                     "channels": [{"channel": c["channel"] + 1, "duration": c["duration"], "speech": c["speech"],
                                   "silence": c["silence"]} for c in job["channels"]]}  # from 1, as segments
    return out


def _config(options: dict[str, Any]) -> dict[str, Any]:
    clustering = {"threshold": options["clustering_threshold"] or DEFAULT_THRESHOLD, "enabled": options["diarization"],
                  **({"speakers": options["speakers_count"]} if options["speakers_count"] else {})}
    bounds = {name: options[name] for name in ("min_speakers", "max_speakers") if options[name]}
    # Where CPqD has settings diarist does not take, what diarist does: one priority, no
    # normalization, no descriptor or classifier tasks, one alternative with word details, and
    # numbers written as digits (Whisper does what CPqD's textify does).
    return {"priority": 50, "normalization": {},
            "diarization": {"vad": {}, "clustering": clustering, "descriptor": {"enabled": False}, **bounds},
            "recognition": {"lm": _lm(options), "textify": {"enabled": True}, "hints_words": options["hints"],
                            "decoder": {"max_sentences": 1, "word_details": 1}, "tasks": []}}


def _lm(options: dict[str, Any]) -> str:
    return options["model"] or DEFAULT_LM


async def _entry(request: Request, job: dict[str, Any], with_segments: bool) -> dict[str, Any]:
    """{"job": ...}, and the segments too when asked for and the job is COMPLETED."""
    entry: dict[str, Any] = {"job": job_object(job)}
    if with_segments and job["status"] == lc.COMPLETED:
        entry["segments"] = writers.cpqd_segments(await job_service(request).result(job["id"]), _lm(job["options"]))
    return entry


def callback_url(url: str, job_id: str) -> str:
    """Where CPqD POSTs a job's webhook: the registered URL, then the job id as the last path segment."""
    return f"{url.rstrip('/')}/{job_id}"


def callback_body(job: dict[str, Any], result: dict[str, Any] | None = None) -> dict[str, Any]:
    """What CPqD POSTs to each callback URL when a job ends: the job object, and the segments of a
    COMPLETED job when its result document is given."""
    body: dict[str, Any] = {"job": job_object(job)}
    if result is not None and job["status"] == lc.COMPLETED:
        body["segments"] = writers.cpqd_segments(result, _lm(job["options"]))
    return body


# -- endpoints --------------------------------------------------------------------------------

async def transcribe(request: Request) -> Response:
    key = idempotency.key_of(request, API)
    form = await _form(request)
    options = _options(form.getlist("config"), request.query_params.get("tag"), [])
    if key:  # a repeat answers from the job, so its result is kept for a day instead of erased at once
        options = {**options, "delete_after_seconds": KEPT_FOR_REPEATS}
    jobs = job_service(request)
    await guard.check_job(jobs, options)
    media = await _stored(request, form)
    once = key.once(request, {"options": options, "media": idempotency.media_facts(media)}) if key else None
    await _refuse_unless_short(request, media)
    job_id = (await jobs.create(media, options, once))["id"]
    job = job_json(await jobs.wait(job_id, timeout=SYNC_WAIT_SECONDS))
    body = await _entry(request, job, with_segments=True)
    if once is None and job["status"] in (lc.COMPLETED, lc.FAILED, lc.STOPPED):
        await jobs.delete(job_id)  # CPqD erases a synchronous job's file once it is done
    return JSONResponse(body)


async def create_job(request: Request) -> Response:
    key = idempotency.key_of(request, API)
    form = await _form(request)
    options = _options(form.getlist("config"), request.query_params.get("tag"),
                       _callback_urls(form.getlist("callback_urls")))
    await guard.check_job(job_service(request), options)
    media = await _stored(request, form)
    once = key.once(request, {"options": options, "media": idempotency.media_facts(media)}) if key else None
    job = await job_service(request).create(media, options, once)
    return JSONResponse({"job": job_object(job_json(job))})


async def list_jobs(request: Request) -> Response:
    filters = {"tag": request.query_params.get("tag")}
    return JSONResponse(await _listing(request, filters, with_segments=False))


async def query_jobs(request: Request) -> Response:
    q = request.query_params
    filters = {"tag": q.get("tag"), "filename": q.get("filename"), "status": _status(q.get("status")),
               "created_after": _moment(q.get("start_date"), "start_date", day_end=False),
               "created_before": _moment(q.get("end_date"), "end_date", day_end=True)}
    return JSONResponse(await _listing(request, filters, with_segments=_flag(q.get("result", "false"), "result")))


async def job_status(request: Request) -> Response:
    return JSONResponse({"job": job_object(job_json(await job_service(request).read(request.path_params["job_id"])))})


async def job_result(request: Request) -> Response:
    job_id, fmt = request.path_params["job_id"], request.query_params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise Problem(422, "format must be json or csv")
    jobs = job_service(request)
    result = await jobs.result(job_id)
    if fmt == "csv":
        return Response(writers.csv(result), media_type="text/csv; charset=utf-8")
    job = job_json(await jobs.read(job_id))
    return JSONResponse({"job": job_object(job), "segments": writers.cpqd_segments(result, _lm(job["options"]))})


async def stop_job(request: Request) -> Response:
    return JSONResponse({"job": job_object(job_json(await job_service(request).stop(request.path_params["job_id"])))})


async def retry_job(request: Request) -> Response:
    return JSONResponse({"job": job_object(job_json(await job_service(request).retry(request.path_params["job_id"])))})


async def delete_job(request: Request) -> Response:
    return JSONResponse({"job": job_object(job_json(await job_service(request).delete(request.path_params["job_id"])))})


# -- listing ----------------------------------------------------------------------------------

async def _listing(request: Request, filters: dict[str, Any], with_segments: bool) -> dict[str, Any]:
    page = int_param(request.query_params.get("page", "1"), "page", 1)
    limit = int_param(request.query_params.get("limit", str(DEFAULT_LIMIT)), "limit", 1, MAX_LIMIT)
    jobs = await _page_at(request, page, limit, filters)
    return {"page": page, "limit": limit, "total": await job_service(request).count(Query(**filters)),
            "results": [await _entry(request, job, with_segments) for job in jobs]}


async def _page_at(request: Request, number: int, limit: int, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """Page `number` (from 1) of `limit` jobs, newest first: the job service pages by cursor, so
    the pages before it are walked, MAX_LIMIT jobs at a time."""
    jobs, query = job_service(request), Query(**filters)
    cursor, skip = None, (number - 1) * limit
    while skip:
        page = await jobs.page(query, limit=min(skip, MAX_LIMIT), cursor=cursor)
        skip -= len(page.jobs)
        cursor = page.next_cursor
        if cursor is None:
            return []
    return [job_json(job) for job in (await jobs.page(query, limit=limit, cursor=cursor)).jobs]


def _status(raw: str | None) -> str | None:
    if raw is not None and raw.upper() not in STATUSES:
        raise Problem(422, f"status must be one of {', '.join(STATUSES)}")
    return raw and raw.upper()


def _flag(raw: str, name: str) -> bool:
    if raw.lower() not in ("true", "false"):
        raise Problem(422, f"{name} must be true or false")
    return raw.lower() == "true"


def _moment(raw: str | None, name: str, day_end: bool) -> datetime | None:
    """An ISO 8601 date-time with an offset, or a date: its start (UTC), or for the end of a
    range the next day's start, so that the range takes the whole day in."""
    if raw is None:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        pass
    else:
        return datetime.combine(day, time(), UTC) + timedelta(days=1 if day_end else 0)
    return datetime_param(raw, name)


routes: list[BaseRoute] = [
    Route("/trd/v3/transcribe", transcribe, methods=["POST"]),
    Route("/trd/v3/job/create", create_job, methods=["POST"]),
    Route("/trd/v3/job", list_jobs, methods=["GET"]),
    Route("/trd/v3/job/status/{job_id}", job_status, methods=["GET"]),
    Route("/trd/v3/job/result/{job_id}", job_result, methods=["GET"]),
    Route("/trd/v3/job/stop/{job_id}", stop_job, methods=["POST"]),
    Route("/trd/v3/job/retry/{job_id}", retry_job, methods=["POST"]),
    Route("/trd/v3/job/{job_id}", delete_job, methods=["DELETE"]),
    Route("/trd/v3/query/job", query_jobs, methods=["GET"]),
]


# -- OpenAPI ----------------------------------------------------------------------------------

def _parameter(name: str, where: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema, "description": description}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


UNAUTHORIZED = {"$ref": "#/components/responses/Unauthorized"}


JOB_ID = _parameter("job_id", "path", {"type": "string"}, "The job's id")
TAG = _parameter("tag", "query", {"type": "string", "maxLength": 256}, "Free text to find the job by")
PAGING = [_parameter("page", "query", {"type": "integer", "minimum": 1, "default": 1}, "Page number, from 1"),
          _parameter("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                        "default": DEFAULT_LIMIT}, "Jobs a page")]
TIMESTAMP = {"type": "string", "format": "date-time"}
JOB_PROPERTIES = {
    "id": {"type": "string"}, "filename": {"type": "string"}, "status": {"type": "string", "enum": list(STATUSES)},
    "created_at": TIMESTAMP, "started_at": TIMESTAMP, "diarized_at": TIMESTAMP, "completed_at": TIMESTAMP,
    "tag": {"type": "string"}, "callback_urls": {"type": "array", "items": {"type": "string"}},
    "callback_failure_reason": {"type": "string"}, "failure_reason": {"type": "string"},
    "media": {"type": "object", "description": "md5 and size; input (sample_rate, channels, bit_rate, format, codec, "
                                               "bandwidth) and output (redundant_channel, channels) once diarized"},
    "config": {"type": "object", "description": "priority, normalization, diarization, recognition"}}
JOB_SCHEMA = {"type": "object", "required": ["id", "filename", "status", "created_at", "media", "config"],
              "properties": JOB_PROPERTIES}
SEGMENTS_SCHEMA = {"type": "array", "items": {"type": "object", "properties": {
    "channel": {"type": "integer", "minimum": 1}, "speaker": {"type": "string"}, "start": {"type": "number"},
    "end": {"type": "number"}, "status": {"type": "string", "enum": ["RECOGNIZED"]},
    "alternatives": {"type": "array", "items": {"type": "object", "properties": {
        "text": {"type": "string"}, "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "lm": {"type": "string"},
        "words": {"type": "array", "items": {"type": "object", "properties": {
            "text": {"type": "string"}, "score": {"type": "integer", "minimum": 0, "maximum": 100},
            "start_time": {"type": "number"}, "end_time": {"type": "number"}}}}}}},
    "task_results": {"type": "object"}}}}
JOB_BODY = {"type": "object", "required": ["job"], "properties": {"job": JOB_SCHEMA}}
RESULT_BODY = {"type": "object", "required": ["job"], "properties": {"job": JOB_SCHEMA, "segments": SEGMENTS_SCHEMA}}
LISTING = {"type": "object", "properties": {
    "page": {"type": "integer"}, "limit": {"type": "integer"}, "total": {"type": "integer"},
    "results": {"type": "array", "items": RESULT_BODY}}}
CONFIG_DESCRIPTION = ("JSON, such as {\"recognition\": {\"hints.words\": [\"Kafka\"]}}, or key=value text such as "
                      "diarization.clustering.enabled=False; the field may repeat. Keys: " + ", ".join(CONFIG))


def _upload(with_callbacks: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {"upload_file": {"type": "string", "format": "binary"},
                                  "config": {"type": "array", "items": {"type": "string"},
                                             "description": CONFIG_DESCRIPTION}}
    if with_callbacks:
        properties["callback_urls"] = {
            "type": "array", "items": {"type": "string", "format": "uri"},
            "description": "URLs told when the job ends; repeat the field or separate with commas"}
    return {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["upload_file"], "properties": properties}}}}


def _command(verb: str, summary: str, refused: str) -> dict[str, Any]:
    return {"summary": summary, "operationId": f"cpqd_{verb}", "parameters": [JOB_ID],
            "responses": {"200": _json(JOB_BODY, "The job after it"), "401": UNAUTHORIZED,
                          "404": _problem("No such job"), "409": _problem(refused),
                          "503": _problem("Recorded but not yet applied; read the job again after Retry-After")}}


paths: dict[str, Any] = {
    "/trd/v3/transcribe": {"post": {
        "operationId": "cpqd_transcribe",
        "summary": f"Transcribe up to {SYNC_MAX_SECONDS:g} s of audio and answer the finished job with its segments",
        "description": "The job's media and result are erased once it is answered, as CPqD does.",
        "parameters": [TAG, idempotency.PARAMETER], "requestBody": _upload(with_callbacks=False),
        "responses": {"200": _json(RESULT_BODY, "The job; its segments when it COMPLETED"),
                      "400": _problem("No upload_file, a config that is neither JSON nor key=value, or a malformed "
                                      "Idempotency-Key"),
                      "401": UNAUTHORIZED,
                      "413": _problem(f"Longer than {SYNC_MAX_SECONDS:g} s, or larger than the service takes"),
                      "422": _problem("Unknown or invalid config, media that cannot be read, or an Idempotency-Key "
                                      "used for a different request")}}},
    "/trd/v3/job/create": {"post": {
        "operationId": "cpqd_create",
        "summary": "Create a transcription job", "parameters": [TAG, idempotency.PARAMETER],
        "requestBody": _upload(with_callbacks=True),
        "responses": {"200": _json(JOB_BODY, "The job, QUEUED"),
                      "400": _problem("No upload_file, a config that is neither JSON nor key=value, or a malformed "
                                      "Idempotency-Key"),
                      "401": UNAUTHORIZED, "413": _problem("Larger than the service takes"),
                      "422": _problem("Unknown or invalid config or callback URLs, or an Idempotency-Key used for "
                                      "a different request")}}},
    "/trd/v3/job": {"get": {
        "operationId": "cpqd_list",
        "summary": "List jobs, newest first", "parameters": [TAG, *PAGING],
        "responses": {"200": _json(LISTING, "One page of jobs and how many there are"),
                      "401": UNAUTHORIZED, "422": _problem("A bad page or limit")}}},
    "/trd/v3/query/job": {"get": {
        "operationId": "cpqd_query",
        "summary": "Find jobs, newest first",
        "parameters": [
            _parameter("result", "query", {"type": "boolean", "default": False}, "Add the segments of COMPLETED jobs"),
            TAG, _parameter("filename", "query", {"type": "string"}, "The media's file name"),
            _parameter("status", "query", {"type": "string", "enum": list(STATUSES)}, "The job's status"),
            _parameter("start_date", "query", {"type": "string"},
                       "Created at or after: ISO 8601 date-time with offset, or a date (from its start, UTC)"),
            _parameter("end_date", "query", {"type": "string"},
                       "Created before: ISO 8601 date-time with offset, or a date (through its end, UTC)"),
            *PAGING],
        "responses": {"200": _json(LISTING, "One page of jobs and how many match"),
                      "401": UNAUTHORIZED,
                      "422": _problem("A bad status, date, result flag, page or limit")}}},
    "/trd/v3/job/status/{job_id}": {"get": {
        "operationId": "cpqd_status",
        "summary": "A job", "parameters": [JOB_ID],
        "responses": {"200": _json(JOB_BODY, "The job"), "401": UNAUTHORIZED,
                      "404": _problem("No such job")}}},
    "/trd/v3/job/result/{job_id}": {"get": {
        "operationId": "cpqd_result",
        "summary": "A COMPLETED job with its segments, or its words as CSV",
        "parameters": [JOB_ID, _parameter("format", "query", {"type": "string", "enum": ["json", "csv"],
                                                              "default": "json"}, "json or csv")],
        "responses": {"200": {"description": "The job and its segments, or CSV: channel, speaker, start, end, word, "
                                             "confidence",
                              "content": {"application/json": {"schema": RESULT_BODY},
                                          "text/csv": {"schema": {"type": "string"}}}},
                      "401": UNAUTHORIZED, "404": _problem("No such job"),
                      "409": _problem("The job is not COMPLETED"), "410": _problem("The job was deleted"),
                      "422": _problem("Another format")}}},
    "/trd/v3/job/stop/{job_id}": {"post": _command(
        "stop", "Stop a QUEUED or IN_PROGRESS job", "The job is not QUEUED or IN_PROGRESS")},
    "/trd/v3/job/retry/{job_id}": {"post": _command(
        "retry", "Queue a FAILED or STOPPED job again", "The job is not FAILED or STOPPED")},
    "/trd/v3/job/{job_id}": {"delete": _command(
        "delete", "Erase a finished job's media and result; the job stays, DELETED",
        "The job is QUEUED or IN_PROGRESS")},
}

surface = Surface("CPqD TRD v3", "CPqD Transcrição de Diálogos v3 (/trd/v3).", routes, paths, apis=("cpqd",),
                  callback_body=callback_body, callback_url=callback_url, docs_prefix="/trd/v3")
