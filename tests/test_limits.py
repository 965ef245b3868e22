"""Per-API-key limits (api/limits.py): the token bucket, the middleware over a small app (unit),
and a service with a small rate answering 429 with Retry-After (system)."""
from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from diarist.api import idempotency
from diarist.api.auth import BearerAuth
from diarist.api.limits import Limits, TokenBucket
from diarist.api.surface import Surface
from diarist.infra.settings import Settings

from .conftest import running_service


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.unit
def test_a_bucket_gives_its_burst_then_its_rate():
    bucket = TokenBucket.full(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # empty: one token in half a second
    assert bucket.take(0.25) == pytest.approx(0.25)  # half a token back, none taken
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0 and bucket.tokens == pytest.approx(2.0), "refills to the burst, no further"


@pytest.mark.unit
def test_a_bucket_never_counts_time_backwards():
    bucket = TokenBucket.full(rate=1.0, burst=1, now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(9.0) == pytest.approx(1.0)


@pytest.mark.unit
def test_the_default_burst_is_twice_the_rate(monkeypatch):
    monkeypatch.setenv("DIARIST_RATE_LIMIT", "20")
    monkeypatch.delenv("DIARIST_RATE_BURST", raising=False)
    assert Settings().rate_burst == 40
    monkeypatch.setenv("DIARIST_RATE_BURST", "5")
    assert Settings().rate_burst == 5
    monkeypatch.delenv("DIARIST_RATE_LIMIT")
    monkeypatch.delenv("DIARIST_RATE_BURST")
    defaults = Settings()
    assert (defaults.rate_limit, defaults.rate_burst, defaults.max_concurrent_uploads) == (50, 100, 8)


def make_app(rate: float, burst: int, uploads: int, clock: Clock, gate: threading.Event | None = None) -> TestClient:
    async def ok(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def create(request: Request) -> JSONResponse:
        await request.body()
        if gate is not None:
            while not gate.is_set():
                await asyncio.sleep(0.01)
        return JSONResponse({"created": True})

    api = Surface("t", "test", [Route("/things", ok, methods=["GET"]), Route("/things", create, methods=["POST"])],
                  {"/things": {"get": {"responses": {}},
                               "post": {"parameters": [idempotency.PARAMETER], "responses": {}}}})
    internal = Surface("i", "internal", [Route("/internal", ok, methods=["GET"])], {}, limited=False)
    public = Surface("p", "public", [Route("/open", ok, methods=["GET"])], {}, public=True)
    surfaces = (api, internal, public)
    app = Starlette(routes=[route for surface in surfaces for route in surface.routes], middleware=[
        Middleware(BearerAuth, keys=frozenset({"a", "b"}), surfaces=surfaces, public_routes=[]),
        Middleware(Limits, surfaces=surfaces, rate=rate, burst=burst, max_uploads=uploads, clock=clock)])
    return TestClient(app)


def get(client: TestClient, path: str = "/things", key: str | None = "a") -> httpx.Response:
    return client.get(path, headers={"Authorization": f"Bearer {key}"} if key else {})


@pytest.mark.unit
def test_over_the_rate_a_key_is_answered_429_with_retry_after_and_a_problem():
    clock = Clock()
    client = make_app(rate=0.5, burst=2, uploads=0, clock=clock)
    assert [get(client).status_code for _ in range(2)] == [200, 200]
    refused = get(client)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "2"  # one token at 0.5 a second
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["status"] == 429 and problem["title"] == "Too Many Requests"
    assert "0.5 requests a second" in problem["detail"]
    assert get(client, key="b").status_code == 200, "another key has a bucket of its own"
    assert get(client, "/internal").status_code == 200, "the peers' internal calls are not counted"
    assert get(client, "/open", key=None).status_code == 200, "nor requests without a key"
    assert get(client, key="nope").status_code == 401, "a wrong key is refused before any limit"
    clock.now += 2
    assert get(client).status_code == 200


@pytest.mark.unit
def test_a_rate_of_zero_is_no_limit():
    client = make_app(rate=0, burst=1, uploads=0, clock=Clock())
    assert {get(client).status_code for _ in range(50)} == {200}


@pytest.mark.unit
def test_uploads_in_progress_are_bounded_per_key():
    gate = threading.Event()
    client = make_app(rate=0, burst=1, uploads=2, clock=Clock(), gate=gate)
    answers: list[int] = []

    def upload(key: str = "a") -> None:
        answers.append(client.post("/things", content=b"media", headers={"Authorization": f"Bearer {key}"}).status_code)

    assert get(client).status_code == 200  # builds the middleware stack once, before the threads share it
    limits = _limits(client)
    running = [threading.Thread(target=upload) for _ in range(2)]
    for thread in running:
        thread.start()
    deadline = time.monotonic() + 10
    while sum(limits.uploads.values()) < 2:  # both are in the handler
        assert time.monotonic() < deadline
        time.sleep(0.01)
    refused = client.post("/things", content=b"media", headers={"Authorization": "Bearer a"})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert "2 uploads in progress" in refused.json()["detail"]
    assert get(client).status_code == 200, "other requests of the key still pass"
    gate.set()
    for thread in running:
        thread.join(10)
    assert answers == [200, 200]
    assert not limits.uploads, "every slot was given back"
    upload()
    assert answers[-1] == 200


def _limits(client: TestClient) -> Limits:
    """The Limits instance in the app's middleware stack (built on the first request)."""
    app = client.app.middleware_stack
    while not isinstance(app, Limits):
        app = app.app
    return app


@pytest.fixture(scope="module")
def limited(tmp_path_factory, kafka):
    yield from running_service(tmp_path_factory, kafka, "limits", DIARIST_RATE_LIMIT="1", DIARIST_RATE_BURST="3")


@pytest.mark.system
def test_a_service_with_a_small_rate_answers_429_with_retry_after(limited):
    with limited.client() as client:
        answers = [client.get("/v1/jobs/count") for _ in range(6)]
    statuses = [answer.status_code for answer in answers]
    assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:], statuses
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["status"] == 429
    assert httpx.get(f"{limited.url}/healthz").status_code == 200, "health checks are not limited"
