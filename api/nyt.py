"""NYT captions service facade (/captions, /jobs/{id}/...): a thin translation onto the job service.

The New York Times' video-captions-api hands a media URL to a captions provider and answers its
own job object. Here this service is the provider: a job is a native TRANSCRIPTION job whose
`parent_id` is the native `tag` (so a parent's jobs are listed by tag), and whose NYT fields with
no native counterpart (provider, provider_params, output_types, media_url, job_type) are kept as
JSON in the native `metadata`. Each output's `url` is this facade's download link once the job
is done.
"""
from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from diarist.api import guard, idempotency, ingest, writers
from diarist.api.options import parse_options
from diarist.api.params import json_object
from diarist.api.problems import Problem
from diarist.api.surface import Surface, job_service
from diarist.api.views import job_json
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.service import Query

API = "nyt"
CAPTION_FORMATS = ("srt", "vtt", "txt")  # what an output, a download or a transcript can be
DEFAULT_OUTPUT_TYPES = ["vtt"]  # as NYT's service defaults
DEFAULT_LANGUAGE = "en"
STATUSES = {lc.QUEUED: "processing", lc.IN_PROGRESS: "processing", lc.COMPLETED: "complete",
            lc.FAILED: "error", lc.STOPPED: "cancelled", lc.DELETED: "deleted"}
PAGE = 1000  # jobs a page when a parent's jobs are gathered


# -- jobs as NYT shows them ----------------------------------------------------------------------

def nyt_job(job: dict) -> dict[str, Any]:
    """The native job as NYT's job object; `done` once nothing more will happen to it."""
    fields = json.loads(job["options"]["metadata"])
    status = STATUSES[job["status"]]
    body = {"id": job["id"], "parent_id": job["options"]["tag"] or "", "media_url": fields["media_url"],
            "status": status, "provider": fields["provider"], "provider_params": fields["provider_params"],
            "created_at": job["created_at"], "outputs": _outputs(job, fields), "done": status != "processing",
            "language": job["options"]["language"] or job["language"] or "", "job_type": fields["job_type"]}
    if job["failure_reason"]:
        body["details"] = job["failure_reason"]
    return body


def _outputs(job: dict, fields: dict) -> list[dict[str, str]]:
    ready = job["status"] == lc.COMPLETED
    return [{"url": f"/jobs/{job['id']}/download/{kind}" if ready else "", "type": kind,
             "filename": _filename(job["id"], fields["media_url"], kind)} for kind in fields["output_types"]]


def _filename(job_id: str, media_url: str, kind: str) -> str:
    """NYT's output name, <media file name without extension>_<job id>.<type>, safe in a header."""
    stem = re.sub(r"[^\w.-]", "_", PurePosixPath(urlsplit(media_url).path).stem)
    return f"{stem}_{job_id}.{kind}"


def callback_body(job: dict, result: dict | None = None) -> dict:
    """What NYT's service POSTs to its callback URL when a job ends: the job object (its outputs are links)."""
    return nyt_job(job)


async def _job(request: Request) -> dict:
    """The job in the path; 404 unless it is an NYT job."""
    job = job_json(await job_service(request).read(request.path_params["id"]))
    if job["options"]["api"] != API:
        raise Problem(404, f"no captions job {job['id']}")
    return job


# -- endpoints -----------------------------------------------------------------------------------

async def create_job(request: Request) -> Response:
    key = idempotency.key_of(request, API)
    fields = await json_object(request)
    media_url = fields.get("media_url")
    if not media_url:
        raise Problem(400, "Please provide a media_url (caption_file uploads are not taken here)")
    provider_params = _provider_params(fields.get("provider_params"))
    metadata = {"media_url": media_url, "provider": _text(fields, "provider"), "provider_params": provider_params,
                "output_types": _output_types(fields.get("output_types", DEFAULT_OUTPUT_TYPES)),
                "job_type": _text(fields, "job_type")}
    options = parse_options({
        "tag": fields.get("parent_id") or None, "language": fields.get("language", DEFAULT_LANGUAGE),
        "metadata": json.dumps(metadata),
        # provider_params.callback is where NYT's providers call back when a job ends; here this
        # service is the provider, so that is where it sends the ended job.
        "callback_urls": [provider_params["callback"]] if "callback" in provider_params else [],
    }, api=API)
    jobs = job_service(request)
    once = key.once(request, options) if key else None  # the options hold every field, media_url included
    if once and (earlier := await jobs.earlier(once)):  # a repeat does not fetch the media again
        return JSONResponse(nyt_job(job_json(earlier)), status_code=201)
    await guard.check_job(jobs, options)
    media = await ingest.fetch(media_url, jobs)
    return JSONResponse(nyt_job(job_json(await jobs.create(media, options, once))), status_code=201)


def _text(fields: dict, name: str) -> str:
    value = fields.get(name) or ""
    if not isinstance(value, str):
        raise Problem(400, f"{name} must be a string")
    return value


def _provider_params(value: Any) -> dict[str, str]:
    params = value or {}
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise Problem(400, "provider_params must be an object of string values")
    return params


def _output_types(value: Any) -> list[str]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(kind, str) and kind in CAPTION_FORMATS for kind in value)):
        raise Problem(422, f"output_types must be a non-empty list of {', '.join(CAPTION_FORMATS)}")
    return list(dict.fromkeys(value))


async def get_job(request: Request) -> Response:
    return JSONResponse(nyt_job(await _job(request)))


async def parent_jobs(request: Request) -> Response:
    """Every job of a parent, oldest first, as NYT's summaries {id, created_at}; 404 for none."""
    parent_id, cursor, jobs = request.path_params["parent_id"], None, []
    while True:
        page = await job_service(request).page(Query(tag=parent_id), limit=PAGE, cursor=cursor)
        jobs += [job_json(job) for job in page.jobs if job["spec"]["options"]["api"] == API]
        cursor = page.next_cursor
        if cursor is None:
            break
    if not jobs:
        raise Problem(404, f"no captions jobs for parent {parent_id}")
    return JSONResponse([{"id": job["id"], "created_at": job["created_at"]} for job in reversed(jobs)])


async def cancel_job(request: Request) -> Response:
    job = await _job(request)
    return JSONResponse(nyt_job(job_json(await job_service(request).stop(job["id"]))))


async def download(request: Request) -> Response:
    """The captions file in the format of the path, named as the job's output."""
    kind = _format(request)
    job = await _job(request)
    write, media_type = writers.FORMATS[kind]
    filename = _filename(job["id"], json.loads(job["options"]["metadata"])["media_url"], kind)
    return Response(write(await job_service(request).result(job["id"])), media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def transcript(request: Request) -> Response:
    """The plain text of the captions in the format of the path, as NYT strips its cues."""
    _format(request)  # every caption format holds the same words: the format is only checked
    job = await _job(request)
    result = await job_service(request).result(job["id"])
    return Response(writers.plain_text(result), media_type="text/plain; charset=utf-8")


def _format(request: Request) -> str:
    kind = request.path_params["format"]
    if kind not in CAPTION_FORMATS:
        raise Problem(400, f"the caption format must be one of {', '.join(CAPTION_FORMATS)}")
    return kind


routes: list[BaseRoute] = [
    Route("/captions", create_job, methods=["POST"]),
    Route("/captions/{parent_id}", parent_jobs, methods=["GET"]),
    Route("/jobs/{id}", get_job, methods=["GET"]),
    Route("/jobs/{id}/cancel", cancel_job, methods=["POST"]),
    Route("/jobs/{id}/download/{format}", download, methods=["GET"]),
    Route("/jobs/{id}/transcript/{format}", transcript, methods=["GET"]),
]


# -- OpenAPI -------------------------------------------------------------------------------------

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "the job's id"}
_FORMAT = {"name": "format", "in": "path", "required": True,
           "schema": {"type": "string", "enum": list(CAPTION_FORMATS)}, "description": "the caption format"}
_JOB = {
    "type": "object",
    "required": ["id", "parent_id", "media_url", "status", "provider", "provider_params", "created_at", "outputs",
                 "done", "language", "job_type"],
    "properties": {
        "id": {"type": "string"},
        "parent_id": {"type": "string", "description": "the caller's id for the media; the native tag"},
        "media_url": {"type": "string", "format": "uri"},
        "status": {"type": "string", "enum": sorted(set(STATUSES.values()))},
        "provider": {"type": "string", "description": "as sent; this service is the provider"},
        "provider_params": {"type": "object", "additionalProperties": {"type": "string"}},
        "created_at": {"type": "string", "format": "date-time"},
        "outputs": {"type": "array", "items": {
            "type": "object", "required": ["url", "type", "filename"],
            "properties": {"url": {"type": "string", "description": "the download link once complete; empty before"},
                           "type": {"type": "string", "enum": list(CAPTION_FORMATS)},
                           "filename": {"type": "string"}}}},
        "done": {"type": "boolean", "description": "true once the job is complete, in error, cancelled or deleted"},
        "language": {"type": "string"},
        "job_type": {"type": "string"},
        "details": {"type": "string", "description": "why the job is in error"},
    },
}
_JOB_RESPONSE = {"content": {"application/json": {"schema": _JOB}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": _PROBLEM}


def _caption_file(description: str, media_types: list[str]) -> dict[str, Any]:
    return {
        "parameters": [_ID, _FORMAT],
        "responses": {
            "200": {"description": description,
                    "content": {media_type: {"schema": {"type": "string"}} for media_type in media_types}},
            "400": _problem("a caption format this service does not write"),
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "404": _problem("no such captions job"),
            "409": _problem("the job is not complete yet"),
            "410": _problem("the job was deleted, and its captions with it"),
        },
    }


# OpenAPI 3.1 path items of these routes, merged into the service's document by api/openapi.py.
paths: dict[str, Any] = {
    "/captions": {"post": {
        "summary": "Create a captions job for the media at a URL", "operationId": "nyt_create",
        "parameters": [idempotency.PARAMETER],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["media_url"],
            "properties": {
                "media_url": {"type": "string", "format": "uri", "description": "http or https; fetched at once"},
                "parent_id": {"type": "string", "description": "the caller's id for the media, to list its jobs by"},
                "provider": {"type": "string"},
                "provider_params": {"type": "object", "additionalProperties": {"type": "string"},
                                    "description": "kept as sent; `callback` is the URL told of the job's end"},
                "output_types": {"type": "array", "items": {"type": "string", "enum": list(CAPTION_FORMATS)},
                                 "default": DEFAULT_OUTPUT_TYPES},
                "language": {"type": "string", "default": DEFAULT_LANGUAGE, "description": "ISO 639, or auto"},
                "job_type": {"type": "string"},
            }}}}},
        "responses": {
            "201": {"description": "the job, processing", **_JOB_RESPONSE},
            "400": _problem("not JSON, no media_url, a field of the wrong type, or a malformed Idempotency-Key"),
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "413": _problem("the media is larger than this service takes"),
            "422": _problem("unknown output types, a bad language, a media_url that is not http(s) or not fetched, "
                            "or an Idempotency-Key used for a different request"),
        },
    }},
    "/captions/{parent_id}": {"get": {
        "summary": "The jobs of a parent, oldest first", "operationId": "nyt_parent_jobs",
        "parameters": [{"name": "parent_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "each job's id and creation time", "content": {"application/json": {"schema": {
                "type": "array", "items": {"type": "object", "required": ["id", "created_at"], "properties": {
                    "id": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"}}}}}}},
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "404": _problem("the parent has no jobs"),
        },
    }},
    "/jobs/{id}": {"get": {
        "summary": "A captions job", "operationId": "nyt_get",
        "parameters": [_ID],
        "responses": {"200": {"description": "the job", **_JOB_RESPONSE},
                      "401": {"$ref": "#/components/responses/Unauthorized"},
                      "404": _problem("no such captions job")},
    }},
    "/jobs/{id}/cancel": {"post": {
        "summary": "Cancel a job that is still processing", "operationId": "nyt_cancel",
        "parameters": [_ID],
        "responses": {"200": {"description": "the job, cancelled", **_JOB_RESPONSE},
                      "401": {"$ref": "#/components/responses/Unauthorized"},
                      "404": _problem("no such captions job"),
                      "409": _problem("the job is already done")},
    }},
    "/jobs/{id}/download/{format}": {"get": {
        "summary": "The captions file, named as the job's output of that type", "operationId": "nyt_download",
        **_caption_file("the captions, with a Content-Disposition filename",
                        [writers.FORMATS[kind][1] for kind in CAPTION_FORMATS]),
    }},
    "/jobs/{id}/transcript/{format}": {"get": {
        "summary": "The captions' words as one line of plain text", "operationId": "nyt_transcript",
        **_caption_file("the words, space-separated", ["text/plain; charset=utf-8"]),
    }},
}

surface = Surface("NYT captions", "The New York Times captions service.", routes, paths, apis=(API,),
                  callback_body=callback_body)
