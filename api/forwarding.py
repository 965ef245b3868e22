"""Interactive queries: a request about a job goes to the jobs worker that owns its partition.

Each jobs worker holds only its partitions of the jobs table. An edge answers what it owns and
forwards the rest, once (a forwarded request is always answered where it lands).
"""
from __future__ import annotations

import httpx
from starlette.requests import Request
from starlette.responses import Response

FORWARDED = "x-diarist-forwarded"
PASSED_HEADERS = ("authorization", "content-type", "accept")
RETURNED_HEADERS = ("content-type", "location", "retry-after", "www-authenticate", "x-diarist-served-by")


def owner_of(request: Request, job_id: str) -> str | None:
    """The edge to ask about this job, or None to answer here."""
    if request.headers.get(FORWARDED):
        return None
    return request.app.state.worker.owner_url(job_id)


def peers(request: Request) -> list[str]:
    if request.headers.get(FORWARDED):
        return []
    return request.app.state.worker.peer_urls()


async def forward(request: Request, base_url: str, path: str | None = None,
                  params: dict | None = None) -> Response:
    response = await ask(request, base_url, request.method, path or request.url.path,
                         params if params is not None else dict(request.query_params), await request.body())
    headers = {k: v for k, v in response.headers.items() if k in RETURNED_HEADERS}
    return Response(response.content, status_code=response.status_code, headers=headers)


async def ask(request: Request, base_url: str, method: str, path: str, params: dict | None = None,
              content: bytes = b"") -> httpx.Response:
    headers = {k: v for k, v in request.headers.items() if k in PASSED_HEADERS}
    headers[FORWARDED] = "1"
    client: httpx.AsyncClient = request.app.state.peers_client
    return await client.request(method, f"{base_url}{path}", params=params, content=content, headers=headers)
