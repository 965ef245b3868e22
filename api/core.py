"""The one job core that every surface speaks through: create, read, list, count, result, commands.

The native API and each vendor facade translate their requests into these calls, and the answers
out of them; none keeps state or logic of its own. A call about a job that another jobs worker
owns is asked of that worker's native API (interactive queries), and a listing is merged from
every worker's page, so a facade never needs to know where a job lives.
"""
from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

import httpx
from starlette.requests import Request

from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.index import InvalidCursor, cursor_after, sort_key
from diarist.streams.jobs.store import Conflict, NotFound, NotYetVisible, media_key, new_job_id
from diarist.streams.jobs.worker import JobsWorker

from diarist.api.forwarding import ask, owner_of, peers
from diarist.api.ingest import Media
from diarist.api.problems import Problem
from diarist.api.views import job_json

FILTERS = ("status", "tag", "task", "filename")
TERMINAL = frozenset({lc.COMPLETED, lc.FAILED, lc.STOPPED, lc.DELETED})


def worker(request: Request) -> JobsWorker:
    return request.app.state.worker


def new_job() -> tuple[str, str]:
    """A new job's id and the blob key its media goes to."""
    job_id = new_job_id()
    return job_id, media_key(job_id)


async def create(request: Request, job_id: str, media: Media, options: dict[str, Any]) -> dict:
    """Queues a job for media already in the blob store; the job as the native API shows it."""
    spec = {"filename": media.filename,
            "media": {"key": media_key(job_id), "md5": media.md5, "size": media.size,
                      "content_type": media.content_type},
            "options": options}
    owner = owner_of(request, job_id)
    job = job_json(await worker(request).commands.create(job_id, spec, wait=owner is None))
    if owner:
        job = await _when_folded_by(request, owner, job_id) or job
    return job


async def _when_folded_by(request: Request, owner: str, job_id: str, timeout: float = 10.0) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await ask(request, owner, "GET", f"/v1/jobs/{job_id}")
        if response.status_code == 200:
            return response.json()
        await asyncio.sleep(0.05)
    return None


async def read(request: Request, job_id: str) -> dict:
    """The job, from whichever worker owns it; 404 when there is none."""
    if owner := owner_of(request, job_id):
        return _answer(await ask(request, owner, "GET", f"/v1/jobs/{job_id}"))
    return job_json(local_job(request, job_id))


async def wait(request: Request, job_id: str, until: frozenset[str] = TERMINAL, timeout: float = 60.0) -> dict:
    """The job once its status is one of `until`, or as it is when the timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        job = await read(request, job_id)
        if job["status"] in until or time.monotonic() >= deadline:
            return job
        if owner_of(request, job_id) is None:
            try:
                await worker(request).store.wait_for(
                    job_id, lambda j: j is not None and j["status"] in until, min(1.0, deadline - time.monotonic()))
            except NotYetVisible:
                pass
        else:
            await asyncio.sleep(0.2)


async def page(request: Request, *, limit: int, cursor: str | None = None,
               created_after: datetime | None = None, created_before: datetime | None = None,
               **filters: str | None) -> tuple[list[dict], str | None]:
    """One page of jobs, newest first, merged from every jobs worker; and the next page's cursor."""
    try:
        jobs, next_cursor = worker(request).store.page(limit=limit, cursor=cursor, created_after=created_after,
                                                       created_before=created_before, **filters)
    except InvalidCursor as exc:
        raise Problem(422, str(exc)) from None
    pages = [([job_json(job) for job in jobs], next_cursor)]
    params = _params(cursor=cursor, limit=limit, created_after=created_after, created_before=created_before,
                     **filters)
    for peer in peers(request):
        body = _answer(await ask(request, peer, "GET", "/v1/jobs", params))
        pages.append((body["jobs"], body["next_cursor"]))
    return _merged(pages, limit)


async def count(request: Request, *, created_after: datetime | None = None,
                created_before: datetime | None = None, **filters: str | None) -> int:
    """How many jobs match, over every jobs worker."""
    total = worker(request).store.index.count(created_after=created_after, created_before=created_before,
                                               **filters)
    params = _params(created_after=created_after, created_before=created_before, **filters)
    for peer in peers(request):
        total += _answer(await ask(request, peer, "GET", "/v1/jobs/count", params))["count"]
    return total


def cursor_at(job: dict) -> str:
    """The cursor of the page that follows this job (for APIs whose cursor is a job id)."""
    return cursor_after(datetime.fromisoformat(job["created_at"]), job["id"])


def _merged(pages: list[tuple[list[dict], str | None]], limit: int) -> tuple[list[dict], str | None]:
    """One page, newest first, out of the pages of every jobs worker, each sorted the same way."""
    def order(job: dict) -> tuple[str, str]:
        return sort_key(datetime.fromisoformat(job["created_at"]), job["id"])

    jobs = sorted((job for page, _ in pages for job in page), key=order)
    more = len(jobs) > limit or any(cursor for _, cursor in pages)
    jobs = jobs[:limit]
    return jobs, cursor_at(jobs[-1]) if more and jobs else None


async def result(request: Request, job_id: str) -> dict:
    """The result document of a COMPLETED job; 409 before, 410 after deletion."""
    if owner := owner_of(request, job_id):
        return _answer(await ask(request, owner, "GET", f"/v1/jobs/{job_id}/result"))
    job = local_job(request, job_id)
    if job["status"] == lc.DELETED:
        raise Problem(410, "the job was deleted, and its result with it")
    if job["status"] != lc.COMPLETED:
        raise Problem(409, f"the job is {job['status']}; its result is there once it is COMPLETED",
                      job_status=job["status"])
    return json.loads(worker(request).blobs.read(job["result"]["key"]))


async def command(request: Request, job_id: str, verb: str) -> dict:
    """stop, retry or delete; the job after it. 404 for no job, 409 where the state forbids it."""
    if owner := owner_of(request, job_id):
        method, path = ("DELETE", f"/v1/jobs/{job_id}") if verb == "delete" else ("POST", f"/v1/jobs/{job_id}/{verb}")
        return _answer(await ask(request, owner, method, path))
    try:
        job = await getattr(worker(request).commands, verb)(job_id)
    except NotFound:
        raise Problem(404, f"no job {job_id}") from None
    except Conflict as exc:
        raise Problem(409, f"cannot {verb} the job: {exc}") from None
    except NotYetVisible:
        raise Problem(503, f"the {verb} is recorded but not yet applied; read the job again shortly",
                      headers={"Retry-After": "1"}) from None
    return job_json(job)


def local_job(request: Request, job_id: str) -> lc.Job:
    job = worker(request).store.get(job_id)
    if job is None:
        raise Problem(404, f"no job {job_id}")
    return job


def _params(**values: Any) -> dict[str, str]:
    return {name: value.isoformat() if isinstance(value, datetime) else str(value)
            for name, value in values.items() if value is not None}


def _answer(response: httpx.Response) -> Any:
    """The JSON of a peer's answer, or its problem raised here as it was raised there."""
    if response.status_code < 300:
        return response.json()
    try:
        body = response.json()
    except ValueError:
        body = {}
    extra = {k: v for k, v in body.items() if k not in ("type", "title", "status", "detail", "instance")}
    headers = {"Retry-After": response.headers["retry-after"]} if "retry-after" in response.headers else None
    raise Problem(response.status_code, body.get("detail") or response.text, headers=headers, **extra)
