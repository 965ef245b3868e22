"""GET /healthz: is the broker reachable, are the tables recovered, is a model loaded."""
from __future__ import annotations

import asyncio

from confluent_kafka.admin import AdminClient
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .views import iso


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
