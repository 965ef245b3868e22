"""Problem documents on their own: every one can be written, names its instance as a URI reference,
and a 405 says which methods the path takes."""
from __future__ import annotations

import re

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from diarist.api.problems import EXCEPTION_HANDLERS, Problem

pytestmark = pytest.mark.unit


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def refuse(request: Request) -> PlainTextResponse:
    raise Problem(422, f"unknown fields: {request.query_params.get('name', '')}\ud800")


@pytest.fixture
def client() -> TestClient:
    routes = [Route("/jobs", ok, methods=["POST"]), Route("/jobs", ok, methods=["GET"]),
              Route("/jobs/{id}", ok, methods=["GET"]), Route("/jobs/{id}", ok, methods=["DELETE"]),
              Route("/refuse", refuse, methods=["POST"])]
    return TestClient(Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS))


def test_a_405_allows_every_method_routed_at_the_path(client):
    for method, path, allowed in (("PUT", "/jobs", "GET, HEAD, POST"), ("PATCH", "/jobs/j1", "DELETE, GET, HEAD"),
                                  ("POST", "/jobs/j1", "DELETE, GET, HEAD"), ("GET", "/refuse", "POST")):
        response = client.request(method, path)
        assert response.status_code == 405 and response.headers["allow"] == allowed, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == f"{method} is not allowed here"


# RFC 3986 path-abempty: "/" and pchar (unreserved, pct-encoded, sub-delims, ":" and "@").
URI_PATH = re.compile(r"(/([A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-F]{2})*)*")


@pytest.mark.parametrize("path", ["/nothing here", "/a%3Fb%23c", "/%25", "/\u00e9t\u00e9", '/"<>`{}|\\^', "/%FF%00"])
def test_the_instance_is_a_uri_reference(client, path):
    response = client.get(path)
    assert response.status_code == 404
    instance = response.json()["instance"]
    assert URI_PATH.fullmatch(instance), instance


def test_the_instance_keeps_the_path(client):
    assert client.get("/a b").json()["instance"] == "/a%20b"
    assert client.get("/a%3Fb").json()["instance"] == "/a%3Fb"
    assert client.get("/jobs/x/y").json()["instance"] == "/jobs/x/y"


def test_a_detail_that_quotes_a_lone_surrogate_is_still_written(client):
    response = client.post("/refuse", params={"name": "x"})
    assert response.status_code == 422
    assert response.json()["detail"] == "unknown fields: x\ud800"
    response.content.decode("ascii")
