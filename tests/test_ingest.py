"""Taking media in, on its own: size caps and option checks, over the job service of the unit tier (tests/fakes.py)."""
from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from diarist.api import ingest
from diarist.api.problems import EXCEPTION_HANDLERS, Problem

from .fakes import job_service

pytestmark = pytest.mark.unit

CAP = 1000


@pytest.fixture
def jobs(tmp_path):
    return job_service(tmp_path, max_media_bytes=CAP)


@pytest.fixture
def blobs(jobs):
    return jobs.blobs


@pytest.fixture
def client(jobs):
    async def upload(request: Request) -> JSONResponse:
        media, options = await ingest.from_upload(request, jobs)
        return JSONResponse({"md5": media.ref["md5"], "size": media.ref["size"], "filename": media.filename,
                             "key": media.ref["key"], "options": options})

    async def url(request: Request) -> JSONResponse:
        media, options = await ingest.from_url(await request.json(), jobs)
        return JSONResponse({"md5": media.ref["md5"], "size": media.ref["size"], "filename": media.filename,
                             "key": media.ref["key"]})

    app = Starlette(routes=[Route("/upload", upload, methods=["POST"]), Route("/url", url, methods=["POST"])],
                    exception_handlers=EXCEPTION_HANDLERS)
    return TestClient(app)


@pytest.fixture
def file_server(tmp_path):
    (tmp_path / "small.wav").write_bytes(b"a" * 10)
    (tmp_path / "big.wav").write_bytes(b"b" * (CAP + 1))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_an_upload_is_stored_with_its_checksum(client, blobs):
    body = b"x" * CAP
    response = client.post("/upload", files={"media": ("../../etc/a.wav", body)})
    assert response.status_code == 200
    key = response.json().pop("key")
    assert {k: v for k, v in response.json().items() if k != "key"} == {
                               "md5": hashlib.md5(body).hexdigest(), "size": CAP, "filename": "a.wav",
                               "options": {"api": "diarist", "tag": None, "language": None, "model": None,
                                           "callback_urls": [], "callback_headers": {}, "metadata": None,
                                               "delete_after_seconds": None, "task": "TRANSCRIPTION",
                                           "engine": None, "diarization": True, "speakers_count": None,
                                           "min_speakers": None, "max_speakers": None,
                                           "clustering_threshold": None, "hints": []}}
    assert blobs.read(key) == body


def test_an_upload_over_the_cap_is_413_and_leaves_nothing(client, blobs):
    response = client.post("/upload", files={"media": ("a.wav", b"x" * (CAP + 1))})
    assert response.status_code == 413 and "1000 bytes" in response.json()["detail"]
    assert not [path for path in blobs.root.rglob("*") if path.is_file()]


def test_a_media_url_is_streamed_in_and_capped(client, blobs, file_server):
    small = client.post("/url", json={"media_url": f"{file_server}/small.wav"}).json()
    assert small == {"md5": hashlib.md5(b"a" * 10).hexdigest(), "size": 10, "filename": "small.wav", "key": small["key"]}
    big = client.post("/url", json={"media_url": f"{file_server}/big.wav"})
    assert big.status_code == 413
    assert blobs.read(small["key"]) == b"a" * 10
    assert [p for p in blobs.root.rglob("*") if p.is_file()] == [blobs.path(small["key"])]  # the refused one left nothing


@pytest.mark.parametrize("options, fragment", [
    ({"tag": "x" * 300}, "tag must be"),
    ({"callback_urls": ["file:///etc/passwd"]}, "callback_urls"),
    ({"metadata": "m" * 5000}, "metadata"),
    (["tag"], "JSON object"),
    ({"task": "translate"}, "task must be"),
    ({"engine": "kaldi"}, "engine must be"),
    ({"speakers_count": 0}, "speakers_count"),
    ({"min_speakers": 3, "max_speakers": 2}, "more than max_speakers"),
    ({"clustering_threshold": 5}, "cosine distance"),
    ({"hints": "kafka"}, "hints"),
])
def test_bad_options_are_422(options, fragment):
    with pytest.raises(Problem) as refused:
        ingest.parse_options(options)
    assert refused.value.status == 422 and fragment in refused.value.detail


def test_options_are_normalised():
    options = ingest.parse_options({"language": "auto", "metadata": {"order": 66}})
    assert options["language"] is None and options["metadata"] == '{"order": 66}'
