"""The Starlette edge: the routes, authentication and problem documents put together."""
from __future__ import annotations

import httpx
from confluent_kafka.admin import AdminClient
from starlette.applications import Starlette
from starlette.middleware import Middleware

from diarist.streams.jobs.worker import JobsWorker

from diarist.api import cpqd, deepaffects, docs, health, jobs, nyt, rev
from diarist.api.auth import BearerAuth
from diarist.api.problems import EXCEPTION_HANDLERS

# Every route of the edge; tests/test_openapi.py checks that the OpenAPI document describes each one.
routes = [*health.routes, *jobs.routes, *cpqd.routes, *rev.routes, *nyt.routes, *deepaffects.routes, *docs.routes]


def create_edge(worker: JobsWorker) -> Starlette:
    app = Starlette(
        routes=routes,
        middleware=[Middleware(BearerAuth, keys=worker.settings.api_keys())],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.worker = worker
    app.state.admin = AdminClient({"bootstrap.servers": worker.settings.bootstrap})
    app.state.peers_client = httpx.AsyncClient(timeout=60)
    return app
