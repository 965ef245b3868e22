"""Interactive queries: the job service's calls about a job that another jobs worker owns.

Each jobs worker holds only its partitions of the jobs table. `HttpPeers` is the job service's
`Peers` over HTTP: it finds the owner of a job's partition from the group assignment (Faust
advertises each worker's edge URL as its canonical URL) and asks that worker's edge, at
/internal/jobs/{operation}, which answers from its own partitions only, never asking further.
Jobs cross as their Avro record (diarist.Job, base64), so the caller gets the very job the owner
holds, and a refusal comes back as the same error of streams/jobs/errors.py.

Forwards are bounded, in number and in time: past what an owner answers, an edge that forwarded
everything would queue requests whose clients have long given up, and its own reads would wait
behind them (docs/deploy.md, Measured). Beyond MAX_IN_FLIGHT a request is refused at once (503,
Retry-After), and a forward the owner does not answer within TIMEOUT ends in 504.
"""
from __future__ import annotations

import base64
from dataclasses import asdict
from datetime import datetime
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from diarist.api.params import json_object
from diarist.api.problems import Problem, problem_of
from diarist.api.surface import Surface, job_service
from diarist.schemas import SchemaError, codec
from diarist.streams.jobs import errors
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.service import Page, Query, Result
from diarist.streams.jobs.worker import JobsWorker

JOB_SCHEMA = "diarist.Job"
PATH = "/internal/jobs/{operation}"
OPERATIONS = ("read", "result", "command", "page", "count")
MAX_IN_FLIGHT = 64
# A stop waits for its event to be applied (a few seconds at most); a connection or a free slot
# in the pool that takes longer means the owner is gone or swamped.
TIMEOUT = httpx.Timeout(15.0, connect=3.0, pool=3.0)


class HttpPeers:
    """The other jobs workers' edges, asked with one of the service's own API keys."""

    def __init__(self, worker: JobsWorker, client: httpx.AsyncClient, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.worker = worker
        self.client = client
        self.headers = {"Authorization": f"Bearer {min(worker.settings.api_keys())}"}
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    def owner_of(self, job_id: str) -> str | None:
        return self.worker.owner_url(job_id)

    def others(self) -> list[str]:
        return self.worker.peer_urls()

    async def read(self, peer: str, job_id: str) -> lc.Job:
        return _job((await self._ask(peer, "read", job_id=job_id))["job"])

    async def result(self, peer: str, job_id: str) -> Result:
        result: Result = (await self._ask(peer, "result", job_id=job_id))["result"]
        return result

    async def command(self, peer: str, job_id: str, verb: str) -> lc.Job:
        return _job((await self._ask(peer, "command", job_id=job_id, verb=verb))["job"])

    async def page(self, peer: str, query: Query, limit: int, cursor: str | None) -> Page:
        body = await self._ask(peer, "page", query=_query_json(query), limit=limit, cursor=cursor)
        return Page([_job(job) for job in body["jobs"]], body["next_cursor"])

    async def count(self, peer: str, query: Query) -> int:
        count: int = (await self._ask(peer, "count", query=_query_json(query)))["count"]
        return count

    async def _ask(self, peer: str, operation: str, **args: Any) -> dict[str, Any]:
        if self.in_flight >= self.max_in_flight:
            raise Problem(503, f"{self.in_flight} requests are waiting on other jobs workers already; try again",
                          headers={"Retry-After": "1"})
        self.in_flight += 1
        try:
            response = await self.client.post(f"{peer}/internal/jobs/{operation}", json=args, headers=self.headers)
        except httpx.TimeoutException:
            raise Problem(504, f"the jobs worker at {peer} did not answer in time") from None
        except httpx.TransportError as exc:
            raise Problem(502, f"the jobs worker at {peer} cannot be reached ({type(exc).__name__})") from None
        finally:
            self.in_flight -= 1
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            raise Problem(502, f"the jobs worker at {peer} answered HTTP {response.status_code}, not JSON") from None
        if response.status_code == 200:
            return body
        error = getattr(errors, body.get("error", ""), None)
        if isinstance(error, type) and issubclass(error, errors.JobError):
            raise error(body["detail"], body["job_status"]) if error is errors.Conflict else error(body["detail"])
        raise Problem(502, f"the jobs worker at {peer} answered HTTP {response.status_code}")


async def answer_peer(request: Request) -> JSONResponse:
    """One call of a peer's HttpPeers, answered from this worker's own partitions."""
    operation = request.path_params["operation"]
    if operation not in OPERATIONS:
        raise Problem(404, f"no peer operation {operation!r}")
    args = await json_object(request)
    jobs = job_service(request)
    try:
        if operation == "read":
            body: dict[str, Any] = {"job": _wire(jobs.local_read(args["job_id"]))}
        elif operation == "result":
            body = {"result": await jobs.local_result(args["job_id"])}
        elif operation == "command":
            body = {"job": _wire(await jobs.local_command(args["job_id"], args["verb"]))}
        elif operation == "page":
            page = jobs.local_page(_query(args["query"]), args["limit"], args["cursor"])
            body = {"jobs": [_wire(job) for job in page.jobs], "next_cursor": page.next_cursor}
        else:
            body = {"count": jobs.local_count(_query(args["query"]))}
    except errors.JobError as exc:
        problem = problem_of(exc)
        return JSONResponse({"error": type(exc).__name__, "detail": problem.detail, "status": problem.status,
                             "job_status": problem.extra.get("job_status")}, status_code=problem.status)
    except (KeyError, TypeError, ValueError) as exc:
        raise Problem(400, f"not a peer call: {exc}") from None
    return JSONResponse(body)


def _wire(job: lc.Job) -> str:
    return base64.b64encode(codec().encode(JOB_SCHEMA, job)).decode()


def _job(wire: str) -> lc.Job:
    try:
        name, job = codec().decode(base64.b64decode(wire))
    except (SchemaError, ValueError) as exc:
        raise Problem(502, f"a jobs worker sent a job that is not one: {exc}") from None
    return job


def _query_json(query: Query) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(query).items()}


def _query(raw: dict[str, Any]) -> Query:
    times = ("created_after", "created_before")
    return Query(**{k: datetime.fromisoformat(v) if k in times and v else v for k, v in raw.items()})


routes = [Route(PATH, answer_peer, methods=["POST"])]

paths = {
    PATH: {
        "post": {
            "summary": "A peer's call about jobs this worker owns (between jobs workers only)",
            "operationId": "internal_peer_call",
            "parameters": [{"name": "operation", "in": "path", "required": True,
                            "schema": {"type": "string", "enum": list(OPERATIONS)}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {
                "200": {"description": "the answer; jobs as base64 diarist.Job Avro records",
                        "content": {"application/json": {"schema": {"type": "object"}}}},
                "400": {"description": "not a peer call", "content": {"application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"}}}},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "404": {"description": "no such job (a peer's answer), or no such operation (a problem)", "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
                "409": {"description": "the job's state refused it", "content": {"application/json": {
                    "schema": {"type": "object"}}}},
                "410": {"description": "the job was deleted", "content": {"application/json": {
                    "schema": {"type": "object"}}}},
                "422": {"description": "a cursor this API did not give out", "content": {"application/json": {
                    "schema": {"type": "object"}}}},
                "503": {"description": "recorded but not yet applied", "content": {"application/json": {
                    "schema": {"type": "object"}}}},
            },
        },
    },
}

surface = Surface("internal", "Calls between jobs workers: each answers for the jobs of its own partitions.",
                  routes, paths, limited=False)
