"""The native job API under /v1/jobs: the job service's calls, as HTTP."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from diarist.api import idempotency, ingest, writers
from diarist.api.params import datetime_param, int_param, json_object
from diarist.api.problems import Problem
from diarist.api.surface import Surface, job_service
from diarist.api.views import job_json
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.service import Query
from diarist.streams.jobs.types import Status, Task

RESULT_FORMATS = writers.FORMATS
SERVED_BY = "x-diarist-served-by"  # which jobs worker's table answered
STATUSES = tuple(Status)
TASKS = tuple(Task)


async def create_job(request: Request) -> Response:
    jobs = job_service(request)
    key = idempotency.key_of(request, "native")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        media, options = await ingest.from_upload(request, jobs)
        once = key.once(request, {"options": options, "media": idempotency.media_facts(media)}) if key else None
    elif content_type.startswith("application/json"):
        body = await json_object(request)
        once = key.once(request, body) if key else None  # a repeat does not fetch the media_url again
        if once and (earlier := await jobs.earlier(once)):
            return _created(earlier)
        media, options = await ingest.from_url(body, jobs)
    else:
        raise Problem(415, "send multipart/form-data with a 'media' file, or JSON with a 'media_url'")
    return _created(await jobs.create(media, options, once))


def _created(job: lc.Job) -> Response:
    view = job_json(job)
    return JSONResponse(view, status_code=201, headers={"Location": f"/v1/jobs/{view['id']}"})


async def get_job(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    jobs = job_service(request)
    job = job_json(await jobs.read(job_id))
    return JSONResponse(job, headers={SERVED_BY: jobs.served_by(job_id) or request.app.state.advertised_url})


def query_of(request: Request) -> Query:
    """The listing filters of the query string."""
    q = request.query_params
    status, task = q.get("status"), q.get("task")
    if status is not None and status.upper() not in STATUSES:
        raise Problem(422, f"status must be one of {', '.join(STATUSES)}")
    if task is not None and task.upper() not in TASKS:
        raise Problem(422, f"task must be one of {', '.join(t.lower() for t in TASKS)}")
    return Query(status=status and status.upper(), task=task and task.upper(), tag=q.get("tag"),
                 filename=q.get("filename"),
                 created_after=datetime_param(q.get("created_after"), "created_after"),
                 created_before=datetime_param(q.get("created_before"), "created_before"))


async def list_jobs(request: Request) -> Response:
    limit = int_param(request.query_params.get("limit", "50"), "limit", 1, 1000)
    page = await job_service(request).page(query_of(request), limit=limit, cursor=request.query_params.get("cursor"))
    return JSONResponse({"jobs": [job_json(job) for job in page.jobs], "next_cursor": page.next_cursor})


async def count_jobs(request: Request) -> Response:
    return JSONResponse({"count": await job_service(request).count(query_of(request))})


async def get_result(request: Request) -> Response:
    fmt = request.query_params.get("format", "json")
    if fmt not in RESULT_FORMATS:
        raise Problem(422, f"format must be one of {', '.join(RESULT_FORMATS)}")
    write, media_type = RESULT_FORMATS[fmt]
    body = write(await job_service(request).result(request.path_params["job_id"]))
    return JSONResponse(body) if fmt == "json" else Response(body, media_type=media_type)


async def stop_job(request: Request) -> Response:
    return JSONResponse(job_json(await job_service(request).stop(request.path_params["job_id"])))


async def retry_job(request: Request) -> Response:
    return JSONResponse(job_json(await job_service(request).retry(request.path_params["job_id"])))


async def delete_job(request: Request) -> Response:
    return JSONResponse(job_json(await job_service(request).delete(request.path_params["job_id"])))


routes = [
    Route("/v1/jobs", create_job, methods=["POST"]),
    Route("/v1/jobs", list_jobs, methods=["GET"]),
    Route("/v1/jobs/count", count_jobs, methods=["GET"]),
    Route("/v1/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/v1/jobs/{job_id}", delete_job, methods=["DELETE"]),
    Route("/v1/jobs/{job_id}/result", get_result, methods=["GET"]),
    Route("/v1/jobs/{job_id}/stop", stop_job, methods=["POST"]),
    Route("/v1/jobs/{job_id}/retry", retry_job, methods=["POST"]),
]

# OpenAPI 3.1 path items of these routes, merged into the service's document by api/openapi.py.
_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
_FILTERS = [
    {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(STATUSES)}},
    {"name": "task", "in": "query", "schema": {"type": "string", "enum": [t.lower() for t in TASKS]}},
    {"name": "tag", "in": "query", "schema": {"type": "string"}},
    {"name": "filename", "in": "query", "schema": {"type": "string"}},
    {"name": "created_after", "in": "query", "description": "inclusive; ISO 8601 with a UTC offset",
     "schema": {"type": "string", "format": "date-time"}},
    {"name": "created_before", "in": "query", "description": "exclusive; ISO 8601 with a UTC offset",
     "schema": {"type": "string", "format": "date-time"}},
]
_UNAUTHORIZED = {"$ref": "#/components/responses/Unauthorized"}


def _problem(description: str) -> dict:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _job(description: str, headers: dict | None = None) -> dict:
    response = {"description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}
    return {**response, "headers": headers} if headers else response


def _command(verb: str, summary: str) -> dict:
    return {"summary": summary, "operationId": f"jobs_{verb}",
            "responses": {"200": _job("the job after the change"), "401": _UNAUTHORIZED,
                          "404": _problem("no such job"), "409": _problem("the job's state does not allow it; "
                                                                         "detail says why"),
                          "503": _problem("recorded but not yet applied; read the job again after Retry-After")}}


paths = {
    "/v1/jobs": {
        "post": {
            "summary": "Create a job from an upload or a media_url",
            "operationId": "jobs_create",
            "parameters": [idempotency.PARAMETER],
            "requestBody": {"required": True, "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": ["media"], "properties": {
                        "media": {"type": "string", "contentMediaType": "application/octet-stream"},
                        "options": {"type": "string", "description": "JobOptions as JSON text"}}},
                    "encoding": {"options": {"contentType": "application/json"}}},
                "application/json": {
                    "schema": {"type": "object", "required": ["media_url"], "additionalProperties": False,
                               "properties": {"media_url": {"type": "string", "format": "uri"},
                                              "options": {"$ref": "#/components/schemas/JobOptions"}}}}}},
            "responses": {
                "201": _job("the job, QUEUED", {"Location": {"schema": {"type": "string"},
                                                             "description": "/v1/jobs/{id}"}}),
                "400": _problem("an unreadable body, no media part, an empty file, options that are not JSON, "
                                "or a malformed Idempotency-Key"),
                "401": _UNAUTHORIZED,
                "413": _problem("the media is larger than this service takes"),
                "415": _problem("neither multipart/form-data nor application/json"),
                "422": _problem("invalid options, a media_url that is not http(s), does not answer 200, or is empty, "
                                "or an Idempotency-Key used for a different request"),
            },
        },
        "get": {
            "summary": "List jobs, newest first",
            "operationId": "jobs_list",
            "parameters": [*_FILTERS,
                           {"name": "limit", "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}},
                           {"name": "cursor", "in": "query", "description": "next_cursor of the previous page",
                            "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "one page; next_cursor is null on the last", "content": {"application/json": {
                    "schema": {"type": "object", "required": ["jobs", "next_cursor"], "properties": {
                        "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                        "next_cursor": {"type": ["string", "null"]}}}}}},
                "401": _UNAUTHORIZED,
                "422": _problem("an unknown status or task, a bad date, limit or cursor"),
            },
        },
    },
    "/v1/jobs/count": {
        "get": {
            "summary": "Count the jobs that match the filters",
            "operationId": "jobs_count",
            "parameters": _FILTERS,
            "responses": {
                "200": {"description": "how many jobs match", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}}}}},
                "401": _UNAUTHORIZED,
                "422": _problem("an unknown status or task, or a bad date"),
            },
        },
    },
    "/v1/jobs/{job_id}": {
        "parameters": [_JOB_ID],
        "get": {
            "summary": "Read a job",
            "operationId": "jobs_get",
            "responses": {
                "200": _job("the job; a deleted one is DELETED", {SERVED_BY: {
                    "schema": {"type": "string"}, "description": "the jobs worker whose table holds the job"}}),
                "401": _UNAUTHORIZED,
                "404": _problem("no such job"),
            },
        },
        "delete": _command("delete", "Delete a job's media and result (the record stays, DELETED)"),
    },
    "/v1/jobs/{job_id}/result": {
        "parameters": [_JOB_ID],
        "get": {
            "summary": "A COMPLETED job's transcript, in one of several formats",
            "operationId": "jobs_result",
            "parameters": [{"name": "format", "in": "query",
                            "schema": {"type": "string", "enum": list(RESULT_FORMATS), "default": "json"}}],
            "responses": {
                "200": {"description": "the transcript", "content": {
                    media_type.split(";")[0]: {"schema": {"$ref": "#/components/schemas/Result"} if fmt == "json"
                                               else {"type": "string"}}
                    for fmt, (_, media_type) in RESULT_FORMATS.items()}},
                "401": _UNAUTHORIZED,
                "404": _problem("no such job"),
                "409": _problem("the job is not COMPLETED yet; job_status says what it is"),
                "410": _problem("the job was deleted, and its result with it"),
                "422": _problem("an unknown format"),
            },
        },
    },
    "/v1/jobs/{job_id}/stop": {"parameters": [_JOB_ID], "post": _command("stop", "Stop a QUEUED or IN_PROGRESS job")},
    "/v1/jobs/{job_id}/retry": {"parameters": [_JOB_ID],
                                "post": _command("retry", "Queue a FAILED or STOPPED job again")},
}

surface = Surface("jobs", "The native job API: create, read, list, count, result, stop, retry, delete.", routes, paths,
                  apis=("diarist",), cookie=True)
