"""Serving the edge inside the Faust worker's event loop, so that it reads the worker's tables."""
from __future__ import annotations

import contextlib
from functools import partial

import uvicorn

from diarist.api.app import callback, create_edge
from diarist.streams.jobs.callbacks import send_callbacks
from diarist.streams.jobs.worker import JobsWorker


class _EdgeServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        # The Faust worker owns the process signals and stops this task on shutdown.
        yield


def serve_edge_in(worker: JobsWorker) -> None:
    """Adds the edge, and the callbacks sender that speaks each surface's words, to the worker as
    tasks of its app."""
    # With JSON logs, uvicorn's own lines go through the root logger's JSON handler (infra/logs.py).
    plain = {} if worker.settings.log_format != "json" else {"log_config": None}
    config = uvicorn.Config(create_edge(worker), host=worker.settings.host, port=worker.settings.port,
                            log_level="warning", lifespan="off", **plain)
    server = _EdgeServer(config)

    async def serve() -> None:
        await server.serve()

    worker.app.task(serve)
    worker.app.task(partial(send_callbacks, worker.settings, worker.jobs, callback, worker.dead_letters))
