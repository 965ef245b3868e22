"""Taking media in, on its own: size caps and option checks, over the job service of the unit tier (tests/fakes.py)."""
from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import threading
from functools import partial

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from diarist.api import guard, ingest
from diarist.api.options import parse_options
from diarist.api.params import json_object
from diarist.api.problems import EXCEPTION_HANDLERS, Problem
from diarist.streams.jobs.errors import MediaUnavailable
from diarist.streams.urls import Allowlist

from .fakes import job_service
from .fence.sitecustomize import install

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
        media, options = await ingest.from_url(await json_object(request), jobs)
        return JSONResponse({"md5": media.ref["md5"], "size": media.ref["size"], "filename": media.filename,
                             "key": media.ref["key"]})

    app = Starlette(routes=[Route("/upload", upload, methods=["POST"]), Route("/url", url, methods=["POST"])],
                    exception_handlers=EXCEPTION_HANDLERS)
    return TestClient(app)


@pytest.fixture
def refusals(monkeypatch) -> None:
    """The network fence (tests/fence): any lookup of a name, or connection, beyond loopback fails the test."""
    def refused(what: str) -> None:
        pytest.fail(f"the network fence was reached: {what}")

    install(refused, monkeypatch.setattr)


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
                                           "clustering_threshold": None, "hints": [], "batch_size": None}}
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
        parse_options(options)
    assert refused.value.status == 422 and fragment in refused.value.detail


def test_options_are_normalised():
    options = parse_options({"language": "auto", "metadata": {"order": 66}})
    assert options["language"] is None and options["metadata"] == '{"order": 66}'


def _stored(blobs) -> list:
    return [path for path in blobs.root.rglob("*") if path.is_file()]


@pytest.mark.parametrize("media_url, detail", [
    ("http://10.0.0.1/x", "media_url points to an address that is not allowed"),
    ("http://169.254.169.254/latest/meta-data/", "media_url points to an address that is not allowed"),
    ("http://0300.0250.0.1/x", "media_url points to an address that is not allowed"),  # octal 192.168.0.1
    ("http://0177.0.0.1/x", "media_url points to an address that is not allowed"),  # octal 127.0.0.1: never read as allowed
    ("http://[::ffff:10.0.0.1]/x", "media_url points to an address that is not allowed"),
    ("http://[fd00::1]/x", "media_url points to an address that is not allowed"),
    ("http://user@127.0.0.1/x", "media_url must not carry a user name or password"),
    ("http:/x", "media_url must have a host"),
    ("ftp://127.0.0.1/x", "media_url must be an http or https URL"),
    (7, "media_url must be an http or https URL"),
])
def test_a_media_url_the_guard_refuses_is_422_before_any_connection(client, blobs, refusals, media_url, detail):
    response = client.post("/url", json={"media_url": media_url})
    assert response.status_code == 422 and response.json()["detail"].startswith(detail), response.text
    assert not _stored(blobs)


def test_loopback_is_refused_unless_allowed(tmp_path, file_server, refusals):
    jobs = job_service(tmp_path, url_allow=Allowlist())  # the default: nothing private
    with pytest.raises(Problem) as refused:
        asyncio.run(ingest.fetch(f"{file_server}/small.wav", jobs))
    assert refused.value.status == 422 and refused.value.detail == "media_url points to an address that is not allowed"
    # And at fetch time, whatever was checked before: the job service's client refuses it too.
    with pytest.raises(MediaUnavailable, match="^media_url points to an address that is not allowed$"):
        asyncio.run(jobs.fetch_media(f"{file_server}/small.wav"))
    assert not _stored(jobs.blobs)


def test_a_redirect_to_a_refused_address_is_not_followed(client, blobs, refusals):
    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        response = client.post("/url", json={"media_url": f"http://127.0.0.1:{server.server_address[1]}/a.wav"})
    finally:
        server.shutdown()
    assert response.status_code == 422
    assert response.json()["detail"] == "media_url points to an address that is not allowed"
    assert not _stored(blobs)


def test_a_failed_fetch_does_not_say_what_answered(client, file_server):
    missing = client.post("/url", json={"media_url": f"{file_server}/missing.wav"}).json()["detail"]
    assert missing == "media_url could not be fetched: HTTP status 404"
    closed = client.post("/url", json={"media_url": "http://127.0.0.1:9/a.wav"}).json()["detail"]
    assert closed == "media_url could not be fetched: connection failed"


@pytest.mark.parametrize("options, detail", [
    ({"callback_urls": ["http://169.254.169.254/hook"]}, "a callback URL points to an address that is not allowed"),
    ({"callback_urls": ["http://127.0.0.1:9/ok", "http://10.1.2.3/hook"]},
     "a callback URL points to an address that is not allowed"),
    ({"callback_urls": ["http:///hook"]}, "a callback URL must have a host"),
    ({"callback_headers": {"Host": "internal"}}, "callback_headers: header 'Host' may not be set"),
    ({"callback_headers": {"X-A": "a\r\nX-B: b"}}, "callback_headers: header 'X-A' must have a printable ASCII"),
    ({"callback_headers": {"Transfer-Encoding": "chunked"}}, "callback_headers: header 'Transfer-Encoding' may not"),
])
def test_callbacks_the_guard_refuses_are_422_and_leave_no_blob(client, blobs, refusals, options, detail):
    response = client.post("/upload", files={"media": ("a.wav", b"RIFF")}, data={"options": json.dumps(options)})
    assert response.status_code == 422 and response.json()["detail"].startswith(detail), response.text
    assert not _stored(blobs)


def test_the_language_is_checked_against_the_default_model(tmp_path):
    jobs = job_service(tmp_path, default_model="tiny.en")
    with pytest.raises(Problem, match="the model tiny.en knows English only"):
        asyncio.run(guard.check_job(jobs, parse_options({"language": "es"})))
    asyncio.run(guard.check_job(jobs, parse_options({"language": "es", "model": "base"})))
    asyncio.run(guard.check_job(jobs, parse_options({"language": "en"})))


MULTIPART = (b'--b\r\nContent-Disposition: form-data; name="media"; filename="a.wav"\r\n\r\nRIFF\r\n'
             b'--b\r\nContent-Disposition: form-data; name="options"\r\n\r\n{"tag": "caf\xe9"}\r\n--b--\r\n')


def test_an_options_part_that_is_not_utf8_is_400(client, blobs):
    latin1 = client.post("/upload", content=MULTIPART, headers={"content-type": "multipart/form-data; boundary=b"})
    assert latin1.status_code == 400 and "the part 'options' is not UTF-8 text" in latin1.json()["detail"]
    assert not _stored(blobs)
    utf8 = client.post("/upload", content=MULTIPART.replace(b"caf\xe9", "café".encode()),
                       headers={"content-type": "multipart/form-data; boundary=b"})
    assert utf8.status_code == 200 and utf8.json()["options"]["tag"] == "café"


@pytest.mark.parametrize("body, status, detail", [
    (b'{"media_url": ' + b"1" * 5000 + b"}", 422, "media_url must be an http or https URL"),
    (b'{"media_url": "http://127.0.0.1:9/", "options": {"speakers_count": ' + b"9" * 5000 + b"}}", 422,
     "speakers_count must be a whole number"),
    (b'{"media_url": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", 400, "the body is not valid JSON"),
    (b'{"media_url": "\\ud800"}', 400, "the body is not valid Unicode"),
    (b'{"\\ud800": 1}', 400, "the body is not valid Unicode"),
    (b"\xff\xfe{}", 400, "the body is not valid JSON"),
])
def test_hostile_json_bodies_are_4xx(client, body, status, detail):
    response = client.post("/url", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status and response.json()["detail"].startswith(detail), response.text
