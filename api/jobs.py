"""The native job API under /v1/jobs."""
from __future__ import annotations

import json
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import core, ingest, writers
from .forwarding import forward, owner_of
from .problems import Problem
from .views import job_json

RESULT_FORMATS = {
    "json": (writers.native_json, "application/json"),
    "csv": (writers.csv, "text/csv; charset=utf-8"),
    "srt": (writers.srt, "application/x-subrip; charset=utf-8"),
    "vtt": (writers.vtt, "text/vtt; charset=utf-8"),
    "txt": (writers.txt, "text/plain; charset=utf-8"),
}
SERVED_BY = "x-diarist-served-by"  # which jobs worker's table answered
STATUSES = ("QUEUED", "IN_PROGRESS", "COMPLETED", "FAILED", "STOPPED", "DELETED")


async def create_job(request: Request) -> Response:
    settings = core.worker(request).settings
    blobs = core.worker(request).blobs
    job_id, key = core.new_job()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        media, options = await ingest.from_upload(request, blobs, key, settings.max_media_bytes)
    elif content_type.startswith("application/json"):
        media, options = await ingest.from_url(await json_object(request), blobs, key, settings.max_media_bytes,
                                               settings.media_url_timeout)
    else:
        raise Problem(415, "send multipart/form-data with a 'media' file, or JSON with a 'media_url'")
    job = await core.create(request, job_id, media, options)
    return JSONResponse(job, status_code=201, headers={"Location": f"/v1/jobs/{job_id}"})


async def json_object(request: Request) -> dict:
    """The request body as a JSON object; 400 otherwise."""
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Problem(400, "the body must be a JSON object")
    return body


async def get_job(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    if owner := owner_of(request, job_id):
        return await forward(request, owner)
    served_by = core.worker(request).settings.advertised_url
    return JSONResponse(job_json(core.local_job(request, job_id)), headers={SERVED_BY: served_by})


def _filters(request: Request) -> dict:
    q = request.query_params
    status, task = q.get("status"), q.get("task")
    if status is not None and status.upper() not in STATUSES:
        raise Problem(422, f"status must be one of {', '.join(STATUSES)}")
    if task is not None and task.upper() not in ingest.TASKS:
        raise Problem(422, f"task must be one of {', '.join(t.lower() for t in ingest.TASKS)}")
    return {"status": status and status.upper(), "task": task and task.upper(), "tag": q.get("tag"),
            "filename": q.get("filename"),
            "created_after": _datetime(q.get("created_after"), "created_after"),
            "created_before": _datetime(q.get("created_before"), "created_before")}


async def list_jobs(request: Request) -> Response:
    limit = _int(request.query_params.get("limit", "50"), "limit", 1, 1000)
    jobs, cursor = await core.page(request, limit=limit, cursor=request.query_params.get("cursor"),
                                   **_filters(request))
    return JSONResponse({"jobs": jobs, "next_cursor": cursor})


async def count_jobs(request: Request) -> Response:
    return JSONResponse({"count": await core.count(request, **_filters(request))})


async def get_result(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    if owner := owner_of(request, job_id):
        return await forward(request, owner)
    fmt = request.query_params.get("format", "json")
    if fmt not in RESULT_FORMATS:
        raise Problem(422, f"format must be one of {', '.join(RESULT_FORMATS)}")
    write, media_type = RESULT_FORMATS[fmt]
    body = write(await core.result(request, job_id))
    return JSONResponse(body) if fmt == "json" else Response(body, media_type=media_type)


async def stop_job(request: Request) -> Response:
    return JSONResponse(await core.command(request, request.path_params["job_id"], "stop"))


async def retry_job(request: Request) -> Response:
    return JSONResponse(await core.command(request, request.path_params["job_id"], "retry"))


async def delete_job(request: Request) -> Response:
    return JSONResponse(await core.command(request, request.path_params["job_id"], "delete"))


def _int(raw: str, name: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise Problem(422, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise Problem(422, f"{name} must be between {low} and {high}")
    return value


def _datetime(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise Problem(422, f"{name} must be an ISO 8601 date-time") from None
    if at.tzinfo is None:
        raise Problem(422, f"{name} needs a UTC offset, such as 2026-01-31T12:00:00Z")
    return at


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
