"""DeepAffects async facade (diarization and transcription submissions, async status): a thin
translation onto the job service.

DeepAffects' SDK and documentation send the audio as base64 `content` (or a public `url`) in a
JSON body, `webhook` and an optional `request_id` in the query, and the API key as `?apikey=`
(api/auth.py takes it on these paths). A submission answers 202 with {request_id, api}. The job's
id is derived from the request_id, so the status API finds it without a search; the request_id
and which API was called are kept as JSON in the native `metadata`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from dataclasses import replace
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from diarist.api import guard, idempotency, ingest, writers
from diarist.api.options import parse_options
from diarist.api.params import json_object
from diarist.api.problems import Problem, restated
from diarist.api.surface import Surface, job_service
from diarist.api.views import job_json
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.errors import MediaTooLarge, NotFound
from diarist.streams.jobs.service import StoredMedia
from diarist.streams.jobs.store import job_id_for_request

API = "deepaffects"
DIARIZE, ASR = "diarize", "asr"  # the `api` a submission answers with
SUBMISSIONS = {"/audio/generic/api/v2/async/diarize": DIARIZE,  # the SDK's DiarizeApiV2
               "/audio/generic/api/v1/async/diarize": DIARIZE,  # the SDK's DiarizeApi
               "/audio/generic/api/v1/async/asr": ASR}  # the Speech-to-Text API (not in the SDK)
STATUS_PATH = "/transaction/generic/api/v1/async/status"
STATUSES = {lc.QUEUED: "Running", lc.IN_PROGRESS: "Running", lc.COMPLETED: "Completed",
            lc.FAILED: "Failed", lc.STOPPED: "Failed", lc.DELETED: "Failed"}
MAX_REQUEST_ID = 256


def job_id(request_id: str) -> str:
    """The job of a request_id, in a namespace of this API's own."""
    return job_id_for_request(f"{API}:{request_id}")


# -- what DeepAffects answers --------------------------------------------------------------------

def callback_body(job: dict, result: dict | None = None) -> dict:
    """What DeepAffects POSTs to the webhook when a job ends: {request_id, response}. The response
    of a completed job is its output, which comes from the job's result document: pass it."""
    fields = json.loads(job["options"]["metadata"])
    return {"request_id": fields["request_id"], "response": _response(job, fields["api"], result)}


def _response(job: dict, api: str, result: dict | None) -> dict | None:
    if STATUSES[job["status"]] == "Failed":
        return {"error": job["failure_reason"] or f"the job was {job['status'].lower()}"}
    if result is None:
        return None
    if api == DIARIZE:
        return writers.deepaffects_diarization(result)
    return writers.deepaffects_transcript(result, speakers=job["options"]["diarization"])


# -- endpoints -----------------------------------------------------------------------------------

async def submit(request: Request, api: str) -> Response:
    jobs = job_service(request)
    key = idempotency.key_of(request, API)
    request_id = request.query_params.get("request_id") or (key.request_id if key else str(uuid.uuid4()))
    if len(request_id) > MAX_REQUEST_ID:
        raise Problem(400, f"request_id must be at most {MAX_REQUEST_ID} characters")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > jobs.max_media_bytes * 4 // 3 + ingest.CHUNK:  # base64: 4/3
        raise _too_large(jobs.max_media_bytes)
    body = await json_object(request)
    options = _options(body, api, request_id, request.query_params.get("webhook"))
    with restated(422, _bad_request):
        await guard.check_job(jobs, options)
    job = job_id(request_id)
    answer = JSONResponse({"request_id": request_id, "api": api}, status_code=202)
    once = key.once(request, {"options": options, "media": _media_facts(body)}, job_id=job) if key else None
    with restated(409, partial(_reused, request_id)):
        if once is None:
            await _refuse_reuse(request, job, request_id)
        elif await jobs.earlier(once):  # a repeat of the request that made the job: the same answer
            return answer
        # The media goes to a key of its own, so that a racing request with the same request_id
        # cannot overwrite the job's: the one whose job the fold took first wins, the other gets 409.
        await jobs.create(replace(await _audio(request, body, request_id), job_id=job), options, once)
    return answer


def _media_facts(body: dict) -> dict[str, Any]:
    """What an Idempotency-Key's fingerprint holds of the media: a digest of the content, or the url."""
    content = body.get("content")
    digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest() if isinstance(content, str) else None
    return {"content": digest, "url": body.get("url")}


def _reused(request_id: str, detail: str) -> Problem:
    return Problem(409, f"request_id {request_id!r} names an earlier request")


def _options(body: dict, api: str, request_id: str, webhook: str | None) -> dict[str, Any]:
    language = body.get("languageCode", "en-US")
    if not isinstance(language, str):
        raise Problem(400, "languageCode must be a string such as en-US")
    speakers = body.get("speakers", body.get("speakerCount", -1))  # the SDK's name, and the docs'
    with restated(422, _bad_request):
        return parse_options({
            "language": language.split("-")[0].lower(),
            "speakers_count": None if speakers == -1 else speakers,
            "diarization": api == DIARIZE or body.get("enableSpeakerDiarization", False),
            "callback_urls": [webhook] if webhook else [],
            "metadata": json.dumps({"request_id": request_id, "api": api}),
        }, api=API)


async def _refuse_reuse(request: Request, job: str, request_id: str) -> None:
    """409 when the request_id already names a job."""
    try:
        await job_service(request).read(job)
    except NotFound:
        return
    raise _reused(request_id, "")


async def _audio(request: Request, body: dict, request_id: str) -> StoredMedia:
    """The audio of `content` (base64) or `url`, into the blob store."""
    jobs = job_service(request)
    content, url = body.get("content"), body.get("url")
    if (content is None) == (url is None):
        raise Problem(400, "send exactly one of content (base64 audio) and url")
    if url is not None:
        with restated(422, _bad_request):
            return await ingest.fetch(url, jobs, name="url")
    try:
        audio = base64.b64decode(content, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise Problem(400, "content is not valid base64") from None
    if not audio:
        raise Problem(400, "content is empty")
    try:
        return await jobs.store_bytes(audio, request_id)
    except MediaTooLarge:
        raise _too_large(jobs.max_media_bytes) from None


def _bad_request(detail: str) -> Problem:
    """DeepAffects' one code for a request it cannot take."""
    return Problem(400, detail)


async def status(request: Request) -> Response:
    request_id = request.query_params.get("request_id")
    if not request_id:
        raise Problem(400, "request_id is required")
    job = await _job(request, request_id)
    result = await job_service(request).result(job["id"]) if job["status"] == lc.COMPLETED else None
    return JSONResponse({"response": callback_body(job, result), "status": STATUSES[job["status"]]})


async def _job(request: Request, request_id: str) -> dict:
    """The job of a request_id; 404 when no DeepAffects request has it."""
    try:
        job = job_json(await job_service(request).read(job_id(request_id)))
    except NotFound:
        raise Problem(404, f"no request {request_id!r}") from None
    if job["options"]["api"] != API:
        raise Problem(404, f"no request {request_id!r}")
    return job


def _too_large(max_bytes: int) -> Problem:
    return Problem(413, f"the audio is larger than the {max_bytes} bytes this service takes")


routes: list[BaseRoute] = [
    *(Route(path, partial(submit, api=api), methods=["POST"]) for path, api in SUBMISSIONS.items()),
    Route(STATUS_PATH, status, methods=["GET"]),
]


# -- OpenAPI -------------------------------------------------------------------------------------

_SECURITY = [{"apikey": []}, {"bearer": []}]
_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_REQUEST_ID = {"type": "string", "maxLength": MAX_REQUEST_ID}
_WORDS = {"type": "array", "items": {
    "type": "object", "required": ["word", "start", "end", "confidence"],
    "properties": {"word": {"type": "string"}, "start": {"type": "number"}, "end": {"type": "number"},
                   "confidence": {"type": ["number", "null"]},
                   "speaker_id": {"type": "string", "description": "with enableSpeakerDiarization"}}}}
_OUTPUT = {"oneOf": [
    {"title": "diarization", "type": "object", "required": ["num_speakers", "segments"], "properties": {
        "num_speakers": {"type": "integer"},
        "segments": {"type": "array", "items": {
            "type": "object", "required": ["speaker_id", "start", "end"],
            "properties": {"speaker_id": {"type": "string"}, "start": {"type": "number"},
                           "end": {"type": "number"}}}}}},
    {"title": "transcription", "type": "object", "required": ["transcript", "confidence", "words"], "properties": {
        "transcript": {"type": "string"}, "confidence": {"type": ["number", "null"]}, "words": _WORDS,
        "num_speakers": {"type": "integer", "description": "with enableSpeakerDiarization"}}},
    {"title": "failure", "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    {"title": "running", "type": "null"},
]}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": _PROBLEM}


def _submission(path: str, api: str) -> dict[str, Any]:
    fields = ({"speakers": {"type": "integer", "default": -1, "description": "-1: unknown"},
               "speakerCount": {"type": "integer", "description": "the documentation's name for speakers"}}
              if api == DIARIZE else
              {"enableSpeakerDiarization": {"type": "boolean", "default": False,
                                            "description": "a speaker_id on each word, and num_speakers"}})
    return {"post": {
        "summary": f"Submit audio for asynchronous {'diarization' if api == DIARIZE else 'transcription'}",
        "operationId": "deepaffects_" + path.split("/api/")[1].replace("/async/", "_"),  # deepaffects_v2_diarize
        "security": _SECURITY,
        "parameters": [
            {"name": "webhook", "in": "query", "schema": {"type": "string", "format": "uri"},
             "description": "told of the job's end (DeepAffects requires it; here polling the status will do)"},
            {"name": "request_id", "in": "query", "schema": _REQUEST_ID,
             "description": "the request's id, for the status API; one is made up when absent (the same one for "
                            "each repeat with an Idempotency-Key)"},
            idempotency.PARAMETER,
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object",
            "description": "exactly one of content and url; encoding, sampleRate, audioType and the rest "
                           "are taken and ignored, as the media is probed",
            "properties": {
                "content": {"type": "string", "contentEncoding": "base64"},
                "url": {"type": "string", "format": "uri"},
                "languageCode": {"type": "string", "default": "en-US", "description": "its language part is used"},
                "encoding": {"type": "string"}, "sampleRate": {"type": "integer"},
                **fields,
            }}}}},
        "responses": {
            "202": {"description": "accepted", "content": {"application/json": {"schema": {
                "type": "object", "required": ["request_id", "api"],
                "properties": {"request_id": {"type": "string"}, "api": {"type": "string", "const": api}}}}}},
            "400": _problem("not JSON, not both nor neither of content and url, bad base64, a bad field, or a "
                            "malformed Idempotency-Key"),
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "409": _problem("the request_id names an earlier request (one not made with this Idempotency-Key)"),
            "413": _problem("the audio is larger than this service takes"),
            "422": _problem("an Idempotency-Key used for a different request"),
        },
    }}


# OpenAPI 3.1 path items of these routes, merged into the service's document by api/openapi.py.
paths: dict[str, Any] = {
    **{path: _submission(path, api) for path, api in SUBMISSIONS.items()},
    STATUS_PATH: {"get": {
        "summary": "The status of a request, and its output once completed", "operationId": "deepaffects_status",
        "security": _SECURITY,
        "parameters": [{"name": "request_id", "in": "query", "required": True, "schema": _REQUEST_ID}],
        "responses": {
            "200": {"description": "the status", "content": {"application/json": {"schema": {
                "type": "object", "required": ["response", "status"], "properties": {
                    "status": {"type": "string", "enum": sorted(set(STATUSES.values()))},
                    "response": {"type": "object", "required": ["request_id", "response"], "properties": {
                        "request_id": {"type": "string"}, "response": _OUTPUT}}}}}}},
            "400": _problem("no request_id"),
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "404": _problem("no request has this request_id"),
        },
    }},
}

surface = Surface("DeepAffects", "DeepAffects asynchronous diarization and transcription.", routes, paths, apis=(API,),
                  query_key="apikey", callback_body=callback_body)
