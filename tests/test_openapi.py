"""The self-documenting API: /openapi.json is valid OpenAPI 3.1 and describes exactly the routes the
edge serves, the native API's answers match it, and Swagger UI at /docs and /trd/v3/docs loads
from the service alone, without a key."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib.metadata import version
from urllib.parse import urlsplit

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from starlette.routing import BaseRoute, Mount, Route

from diarist.api import app

from .service import submit, until_status, wait_for_job

pytestmark = pytest.mark.system

TRD = "/trd/v3"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def template(path: str) -> str:
    """A path with each parameter written {param}: routes and documents name them differently."""
    return re.sub(r"\{[^}]*\}", "{param}", path)


def routed(routes: list[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    """(path template, METHOD) of every route, through mounts; HEAD only where it is not GET's shadow."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Mount):
            assert route.routes, f"the mount at {route.path} serves an app whose routes cannot be documented"
            found |= routed(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            assert route.methods, f"{route.path} declares no methods"
            methods = route.methods - {"HEAD"} if "GET" in route.methods else route.methods
            found |= {(template(prefix + route.path), method) for method in methods}
        else:
            raise AssertionError(f"no way to compare {route!r} with the document")
    return found


def documented(document: dict) -> set[tuple[str, str]]:
    return {(template(path), method.upper())
            for path, item in document["paths"].items() for method in item if method in METHODS}


def conforms(document: dict, path: str, method: str, status: int, body: object,
             media_type: str = "application/json") -> None:
    """Raises unless the body is what the document says that answer holds."""
    response = document["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:  # a shared response: #/components/responses/<name>
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    schema = response["content"][media_type]["schema"]
    OAS31Validator({"components": document["components"], **schema}).validate(body)


class Assets(HTMLParser):
    """The URLs of a page's scripts and stylesheets."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.urls.append(found["src"])
        if tag == "link" and found.get("rel") == "stylesheet":
            self.urls.append(found["href"])


@pytest.fixture(scope="module")
def document(service) -> dict:
    with service.client(key=None) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json", response.text
    return response.json()


def test_the_document_is_valid_openapi_3_1(document):
    validate(document)
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"] == "diarist" and document["info"]["version"] == version("diarist")
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apikey"] == {**schemes["apikey"], "type": "apiKey", "in": "query"}
    assert document["security"] == [{"bearer": []}]
    required = [name for item in document["paths"].values() for method, op in item.items() if method in METHODS
                for requirement in op.get("security", []) for name in requirement]
    assert set(required) <= set(schemes), "an operation asks for a security scheme the document does not declare"
    assert {"Job", "Problem", "Result"} <= set(document["components"]["schemas"])


def test_every_route_is_documented_and_every_documented_operation_is_routed(document):
    served = routed([route for route in app.routes if route not in app.DOC_ROUTES])
    native = {("/healthz", "GET"), ("/v1/jobs", "POST"), ("/v1/jobs", "GET"), ("/v1/jobs/count", "GET"),
              ("/v1/jobs/{param}", "GET"), ("/v1/jobs/{param}", "DELETE"), ("/v1/jobs/{param}/result", "GET"),
              ("/v1/jobs/{param}/stop", "POST"), ("/v1/jobs/{param}/retry", "POST")}
    assert native <= served
    in_document = documented(document)
    assert sorted(served - in_document) == [], "routed but not documented"
    assert sorted(in_document - served) == [], "documented but not routed"


def test_the_native_answers_are_what_the_document_says(service, speech, document):
    with service.client() as client:
        created = submit(client, speech[0], '{"tag": "openapi"}')
        conforms(document, "/v1/jobs", "post", 201, created)
        job = wait_for_job(client, created["id"], until_status("COMPLETED", "FAILED"))
        assert job["status"] == "COMPLETED", job["failure_reason"]
        conforms(document, "/v1/jobs/{job_id}", "get", 200, job)
        result = client.get(f"/v1/jobs/{job['id']}/result")
        conforms(document, "/v1/jobs/{job_id}/result", "get", 200, result.json())
        listed = client.get("/v1/jobs", params={"tag": "openapi"})
        conforms(document, "/v1/jobs", "get", 200, listed.json())
        conforms(document, "/v1/jobs/count", "get", 200, client.get("/v1/jobs/count").json())
        missing = client.get("/v1/jobs/nope/result")
        conforms(document, "/v1/jobs/{job_id}/result", "get", 404, missing.json(), "application/problem+json")
        again = client.post(f"/v1/jobs/{job['id']}/stop")
        conforms(document, "/v1/jobs/{job_id}/stop", "post", 409, again.json(), "application/problem+json")
    with service.client(key=None) as client:
        health = client.get("/healthz")
        conforms(document, "/healthz", "get", health.status_code, health.json())
        refused = client.get("/v1/jobs")
        assert refused.status_code == 401
        conforms(document, "/v1/jobs", "get", 401, refused.json(), "application/problem+json")


@pytest.mark.parametrize("prefix", ["", TRD])
def test_swagger_ui_loads_from_the_service_alone_without_a_key(service, prefix):
    with service.client(key=None) as client:
        page = client.get(f"{prefix}/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f'url: "{prefix}/openapi.json"' in page.text
        parser = Assets()
        parser.feed(page.text)
        assert {urlsplit(url).path.rsplit("/", 1)[-1] for url in parser.urls} >= {"swagger-ui-bundle.js",
                                                                                  "swagger-ui.css"}
        for url in parser.urls:
            assert url.startswith("/") and not urlsplit(url).netloc, f"{url} is not on this service"
            asset = client.get(url)
            assert asset.status_code == 200 and asset.content, url
        bundle = client.get(next(url for url in parser.urls if url.endswith("/swagger-ui-bundle.js"))).text
        major = int(re.search(r'PACKAGE_VERSION:"(\d+)\.', bundle).group(1))
        assert major >= 5, f"Swagger UI {major} cannot render OpenAPI 3.1"
        assert client.get(f"{prefix}/openapi.json").status_code == 200


def test_the_cpqd_docs_hold_only_the_cpqd_paths(service, document):
    with service.client(key=None) as client:
        trd = client.get(f"{TRD}/openapi.json").json()
    validate(trd)
    assert trd["paths"] == {path: item for path, item in document["paths"].items() if path.startswith(f"{TRD}/")}
    assert trd["paths"], "the CPqD facade documents no path"
    assert trd["components"] == document["components"]
