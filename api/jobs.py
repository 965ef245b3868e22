"""The native job API under /v1/jobs."""
from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from diarist.streams import lifecycle as lc
from diarist.streams.jobindex import InvalidCursor, cursor_after, sort_key
from diarist.streams.jobs import Conflict, NotFound, NotYetVisible, media_key, new_job_id
from diarist.streams.worker import JobsWorker

from . import ingest, writers
from .forwarding import ask, forward, owner_of, peers
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


def _worker(request: Request) -> JobsWorker:
    return request.app.state.worker


async def create_job(request: Request) -> Response:
    worker = _worker(request)
    settings = worker.settings
    job_id = new_job_id()
    key = media_key(job_id)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        media, options = await ingest.from_upload(request, worker.blobs, key, settings.max_media_bytes)
    elif content_type.startswith("application/json"):
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise Problem(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise Problem(400, "the body must be a JSON object")
        media, options = await ingest.from_url(body, worker.blobs, key, settings.max_media_bytes,
                                               settings.media_url_timeout)
    else:
        raise Problem(415, "send multipart/form-data with a 'media' file, or JSON with a 'media_url'")
    spec = {"filename": media.filename,
            "media": {"key": key, "md5": media.md5, "size": media.size, "content_type": media.content_type},
            "options": options}
    owner = owner_of(request, job_id)
    body = job_json(await worker.commands.create(job_id, spec, wait=owner is None))
    if owner:
        body = await _when_folded_by(request, owner, job_id) or body
    return JSONResponse(body, status_code=201, headers={"Location": f"/v1/jobs/{job_id}"})


async def _when_folded_by(request: Request, owner: str, job_id: str, timeout: float = 10.0) -> dict | None:
    """The job as its owner holds it, once the owner has folded its creation."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await ask(request, owner, "GET", f"/v1/jobs/{job_id}")
        if response.status_code == 200:
            return response.json()
        await asyncio.sleep(0.05)
    return None


async def get_job(request: Request) -> Response:
    if owner := owner_of(request, request.path_params["job_id"]):
        return await forward(request, owner)
    return JSONResponse(job_json(_job(request)), headers={SERVED_BY: _worker(request).settings.advertised_url})


async def list_jobs(request: Request) -> Response:
    q = request.query_params
    status = q.get("status")
    if status is not None and status.upper() not in STATUSES:
        raise Problem(422, f"status must be one of {', '.join(STATUSES)}")
    limit = _int(q.get("limit", "50"), "limit", 1, 1000)
    try:
        jobs, cursor = _worker(request).store.page(
            status=status.upper() if status else None, tag=q.get("tag"),
            created_after=_datetime(q.get("created_after"), "created_after"),
            created_before=_datetime(q.get("created_before"), "created_before"),
            cursor=q.get("cursor"), limit=limit)
    except InvalidCursor as exc:
        raise Problem(422, str(exc)) from None
    pages = [([job_json(job) for job in jobs], cursor)]
    for peer in peers(request):
        response = await ask(request, peer, "GET", "/v1/jobs", dict(q))
        if response.status_code != 200:
            return Response(response.content, response.status_code, media_type=response.headers.get("content-type"))
        pages.append((response.json()["jobs"], response.json()["next_cursor"]))
    return JSONResponse(_merged(pages, limit))


def _merged(pages: list[tuple[list[dict], str | None]], limit: int) -> dict:
    """One page, newest first, out of the pages of every jobs worker, each sorted the same way."""
    def order(job: dict) -> tuple[str, str]:
        return sort_key(datetime.fromisoformat(job["created_at"]), job["id"])

    jobs = sorted((job for page, _ in pages for job in page), key=order)
    more = len(jobs) > limit or any(cursor for _, cursor in pages)
    jobs = jobs[:limit]
    cursor = cursor_after(datetime.fromisoformat(jobs[-1]["created_at"]), jobs[-1]["id"]) if more and jobs else None
    return {"jobs": jobs, "next_cursor": cursor}


async def get_result(request: Request) -> Response:
    if owner := owner_of(request, request.path_params["job_id"]):
        return await forward(request, owner)
    job = _job(request)
    if job["status"] == lc.DELETED:
        raise Problem(410, "the job was deleted, and its result with it")
    if job["status"] != lc.COMPLETED:
        raise Problem(409, f"the job is {job['status']}; its result is there once it is COMPLETED",
                      job_status=job["status"])
    fmt = request.query_params.get("format", "json")
    if fmt not in RESULT_FORMATS:
        raise Problem(422, f"format must be one of {', '.join(RESULT_FORMATS)}")
    data = _worker(request).blobs.read(job["result"]["key"])
    if fmt == "json":
        return Response(data, media_type="application/json")
    write, media_type = RESULT_FORMATS[fmt]
    return Response(write(json.loads(data)), media_type=media_type)


async def stop_job(request: Request) -> Response:
    return await _command(request, "stop")


async def retry_job(request: Request) -> Response:
    return await _command(request, "retry")


async def delete_job(request: Request) -> Response:
    return await _command(request, "delete")


async def _command(request: Request, verb: str) -> Response:
    commands = _worker(request).commands
    job_id = request.path_params["job_id"]
    if owner := owner_of(request, job_id):
        return await forward(request, owner)
    try:
        job = await getattr(commands, verb)(job_id)
    except NotFound:
        raise Problem(404, f"no job {job_id}") from None
    except Conflict as exc:
        raise Problem(409, f"cannot {verb} the job: {exc}") from None
    except NotYetVisible:
        raise Problem(503, f"the {verb} is recorded but not yet applied; read the job again shortly",
                      headers={"Retry-After": "1"}) from None
    return JSONResponse(job_json(job))


def _job(request: Request) -> lc.Job:
    job_id = request.path_params["job_id"]
    job = _worker(request).store.get(job_id)
    if job is None:
        raise Problem(404, f"no job {job_id}")
    return job


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
    Route("/v1/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/v1/jobs/{job_id}", delete_job, methods=["DELETE"]),
    Route("/v1/jobs/{job_id}/result", get_result, methods=["GET"]),
    Route("/v1/jobs/{job_id}/stop", stop_job, methods=["POST"]),
    Route("/v1/jobs/{job_id}/retry", retry_job, methods=["POST"]),
]
