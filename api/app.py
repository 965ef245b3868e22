"""The Starlette edge: the one list of API surfaces, and the app made from it.

Routes, the OpenAPI document, Swagger UI pages, authentication and the words of each job's
callbacks all come from SURFACES (api/surface.py says what a surface declares).
"""
from __future__ import annotations

import httpx
from confluent_kafka.admin import AdminClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from diarist.api import cpqd, deepaffects, docs, events, forwarding, health, metrics, native, nyt, rev, schema_registry, ui
from diarist.api.auth import BearerAuth
from diarist.api.limits import Limits
from diarist.api.problems import EXCEPTION_HANDLERS
from diarist.api.surface import Surface
from diarist.api.views import job_json
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.callbacks import Callback
from diarist.streams.jobs.service import Result
from diarist.streams.jobs.worker import JobsWorker

SURFACES: tuple[Surface, ...] = (
    native.surface,
    events.surface,
    ui.surface,
    health.surface,
    cpqd.surface,
    rev.surface,
    nyt.surface,
    deepaffects.surface,
    forwarding.surface,
    schema_registry.surface,
    metrics.surface,
)

# options.api -> the surface whose words a job's callbacks speak
BY_API = {api: surface for surface in SURFACES for api in surface.apis}

# The documents and Swagger UI pages of SURFACES, served without a key.
DOC_ROUTES: list[BaseRoute] = docs.routes(SURFACES)
routes: list[BaseRoute] = [*(route for surface in SURFACES for route in surface.routes), *DOC_ROUTES]


def create_edge(worker: JobsWorker) -> Starlette:
    app = Starlette(
        routes=routes,
        middleware=[Middleware(metrics.HttpMetrics, routes=routes),  # outermost: refused requests count too
                    Middleware(BearerAuth, keys=worker.settings.api_keys(), surfaces=SURFACES,
                               public_routes=DOC_ROUTES),
                    # inside BearerAuth: limits are per authenticated key
                    Middleware(Limits, surfaces=SURFACES, rate=worker.settings.rate_limit,
                               burst=worker.settings.rate_burst, max_uploads=worker.settings.max_concurrent_uploads)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    peers_client = httpx.AsyncClient(timeout=forwarding.TIMEOUT)
    worker.jobs.peers = forwarding.HttpPeers(worker, peers_client)
    app.state.jobs = worker.jobs
    app.state.worker = worker
    app.state.advertised_url = worker.settings.advertised_url
    app.state.admin = AdminClient({"bootstrap.servers": worker.settings.bootstrap})
    return app


def callback(job: lc.Job, result: Result | None, event_word: str) -> Callback:
    """Where an ended job's callbacks go and what they say, in the words of the surface that made
    it: its callback_body (given the result document of a COMPLETED job), or the native body
    `{"event": "completed", "job": {...}}`."""
    view = job_json(job)
    surface = BY_API.get(job["spec"]["options"]["api"], native.surface)
    urls = [surface.callback_url(url, job["id"]) for url in job["spec"]["options"]["callback_urls"]]
    if surface.callback_body is None:
        return Callback(urls, {"event": event_word, "job": view})
    return Callback(urls, surface.callback_body(view, result))
