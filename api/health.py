"""GET /healthz: is the broker reachable, are the tables recovered, is a model loaded; under
`diarist up`, is every part it supervises running."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from diarist.api.surface import Surface
from diarist.api.views import iso


async def healthz(request: Request) -> JSONResponse:
    worker = request.app.state.worker
    broker = await asyncio.to_thread(_broker_reachable, request.app.state.admin)
    workers = worker.heartbeats.live()
    parts = _supervised_parts(worker.settings.supervisor_state_file)
    checks = {
        "broker": broker,
        "tables_recovered": worker.recovered,
        "model_loaded": any(beat["loaded"] for beat in workers),
    }
    if parts is not None:
        checks["parts_running"] = all(part.get("state") == "running" for part in parts.values())
    body = {
        "status": "ok" if all(checks.values()) else "unavailable",
        "checks": checks,
        "jobs_workers": sorted({worker.settings.advertised_url, *worker.peer_urls()}),
        "inference_workers": [{"worker": b["worker"], "model": b["model"], "loaded": b["loaded"],
                               "device": b["device"], "seen_at": iso(b["at"])} for b in workers],
        # Poison this process skipped since it started (streams/deadletters.py): information, not a check.
        "dead_letters": worker.dead_letters.summary(),
    }
    if parts is not None:
        body["parts"] = parts
    return JSONResponse(body, status_code=200 if all(checks.values()) else 503)


def _supervised_parts(path: Path) -> dict[str, Any] | None:
    """The states `diarist up` keeps of the processes it supervises (cli/supervisor.py); None
    when this worker runs unsupervised: no file, or one left by a supervisor that is gone."""
    try:
        state = json.loads(path.read_text())
        parts, pid = state["parts"], int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    return parts if isinstance(parts, dict) else None


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
                                                    "model_loaded": {"type": "boolean"},
                                                    "parts_running": {
                                                        "type": "boolean",
                                                        "description": "under `diarist up` only"}}},
        "jobs_workers": {"type": "array", "items": {"type": "string", "format": "uri"},
                         "description": "the edges of every jobs worker"},
        "inference_workers": {"type": "array", "items": {"type": "object", "properties": {
            "worker": {"type": "string"}, "model": {"type": "string"}, "loaded": {"type": "boolean"},
            "device": {"type": "string"}, "seen_at": {"type": "string", "format": "date-time"}}}},
        "dead_letters": {"type": "object", "required": ["count", "by"], "description": (
            "values this jobs worker process could not decode or apply since it started, copied to "
            "<namespace>.dead-letters and skipped (docs/events.md); not a check"), "properties": {
            "count": {"type": "integer"},
            "by": {"type": "array", "items": {"type": "object", "properties": {
                "agent": {"type": "string"}, "topic": {"type": "string"},
                "kind": {"type": "string", "enum": ["decode", "schema", "apply"]},
                "count": {"type": "integer"}}}}}},
        "parts": {"type": "object", "description": "under `diarist up` only: each process it supervises",
                  "additionalProperties": {"type": "object", "properties": {
                      "state": {"type": "string", "enum": ["starting", "running", "restarting"]},
                      "restarts": {"type": "integer"},
                      "since": {"type": "string", "format": "date-time"},
                      "pid": {"type": ["integer", "null"]}}}},
    }}}}
paths = {
    "/healthz": {
        "get": {
            "summary": "Is the broker reachable, are the tables recovered, is a model loaded, is every part running",
            "operationId": "healthz",
            "security": [],
            "responses": {"200": {"description": "every check passes", "content": _HEALTH},
                          "503": {"description": "some check fails", "content": _HEALTH}},
        },
    },
}

surface = Surface("health", "Whether this worker can take jobs.", routes, paths, public=True)
