"""GET /healthz: is the broker reachable, are the tables recovered, is a model loaded."""
from __future__ import annotations

import asyncio

from confluent_kafka.admin import AdminClient
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from diarist.api.views import iso


async def healthz(request: Request) -> JSONResponse:
    worker = request.app.state.worker
    broker = await asyncio.to_thread(_broker_reachable, request.app.state.admin)
    workers = worker.heartbeats.live()
    checks = {
        "broker": broker,
        "tables_recovered": worker.recovered,
        "model_loaded": any(beat["loaded"] for beat in workers),
    }
    body = {
        "status": "ok" if all(checks.values()) else "unavailable",
        "checks": checks,
        "jobs_workers": sorted({worker.settings.advertised_url, *worker.peer_urls()}),
        "inference_workers": [{"worker": b["worker"], "model": b["model"], "loaded": b["loaded"],
                               "device": b["device"], "seen_at": iso(b["at"])} for b in workers],
    }
    return JSONResponse(body, status_code=200 if all(checks.values()) else 503)


def _broker_reachable(admin: AdminClient) -> bool:
    try:
        admin.list_topics(timeout=2)
        return True
    except Exception:
        return False


routes = [Route("/healthz", healthz, methods=["GET"])]

# OpenAPI 3.1 path item of this route, merged into the service's document by api/openapi.py.
_HEALTH = {"application/json": {"schema": {
    "type": "object", "required": ["status", "checks", "jobs_workers", "inference_workers"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "checks": {"type": "object", "properties": {"broker": {"type": "boolean"},
                                                    "tables_recovered": {"type": "boolean"},
                                                    "model_loaded": {"type": "boolean"}}},
        "jobs_workers": {"type": "array", "items": {"type": "string", "format": "uri"},
                         "description": "the edges of every jobs worker"},
        "inference_workers": {"type": "array", "items": {"type": "object", "properties": {
            "worker": {"type": "string"}, "model": {"type": "string"}, "loaded": {"type": "boolean"},
            "device": {"type": "string"}, "seen_at": {"type": "string", "format": "date-time"}}}},
    }}}}
paths = {
    "/healthz": {
        "get": {
            "summary": "Is the broker reachable, are the tables recovered, is a model loaded",
            "operationId": "healthz",
            "security": [],
            "responses": {"200": {"description": "every check passes", "content": _HEALTH},
                          "503": {"description": "some check fails", "content": _HEALTH}},
        },
    },
}
