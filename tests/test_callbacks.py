"""Callbacks end to end: a real service POSTs ended jobs to a receiver, signed, retried, recorded."""
from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import signal
import threading
import time
from collections import defaultdict
from email.message import Message

import pytest

from diarist.api import app
from diarist.api.ingest import parse_options
from diarist.api.surface import Surface
from diarist.streams.jobs import callbacks
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.urls import Allowlist, guarded_client

from .conftest import running_service
from .fakes import LOOPBACK
from .fence.sitecustomize import install
from .service import submit, wait_for_job

SECRET = "callback-secret"
ATTEMPTS = 3


class Receiver:
    """An HTTP server that records every POST, answering each path with the statuses scripted
    for it, one per request (the last one repeats), once the path is not held."""

    def __init__(self) -> None:
        self.requests: dict[str, list[tuple[Message, bytes]]] = defaultdict(list)
        self.script: dict[str, list[int]] = {}
        self.held: dict[str, threading.Event] = {}
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                received = receiver.requests[self.path]
                received.append((self.headers, body))
                if self.path in receiver.held:
                    receiver.held[self.path].wait(60)
                statuses = receiver.script.get(self.path, [200])
                self.send_response(statuses[min(len(received), len(statuses)) - 1])
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str, *statuses: int) -> str:
        if statuses:
            self.script[path] = list(statuses)
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def hold(self, path: str) -> threading.Event:
        """Requests to path go unanswered until the event is set."""
        return self.held.setdefault(path, threading.Event())

    def wait(self, path: str, count: int, timeout: float = 60) -> list[tuple[Message, bytes]]:
        """The requests to path once there are `count`, and no more come within a second."""
        deadline = time.monotonic() + timeout
        while len(self.requests[path]) < count:
            assert time.monotonic() < deadline, f"{path} got {len(self.requests[path])} of {count} callbacks"
            time.sleep(0.1)
        time.sleep(1.0)
        return self.requests[path]


@pytest.fixture(scope="module")
def service(tmp_path_factory, kafka):
    yield from running_service(tmp_path_factory, kafka, "callbacks", DIARIST_CALLBACK_SECRET=SECRET,
                               DIARIST_CALLBACK_ATTEMPTS=str(ATTEMPTS), DIARIST_CALLBACK_BACKOFF_SECONDS="0.2")


@pytest.fixture(scope="module")
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def completed(service, speech, receiver):
    """A transcribed job whose callbacks go to a receiver that takes them, and to one that
    fails twice first."""
    options = {"callback_urls": [receiver.url("/ok"), receiver.url("/flaky", 500, 502, 200)],
               "callback_headers": {"Authorization": "Bearer receiver-token"}}
    with service.client() as client:
        job = submit(client, speech[0], json.dumps(options))
        return wait_for_job(client, job["id"], lambda j: j["status"] in ("COMPLETED", "FAILED", "STOPPED"))


def stopped(service, speech, callback_url: str) -> dict:
    """A job stopped as soon as it is made, with one callback URL."""
    with service.client() as client:
        job = submit(client, speech[0], json.dumps({"callback_urls": [callback_url]}))
        response = client.post(f"/v1/jobs/{job['id']}/stop")
        assert response.status_code == 200, response.text
        return response.json()


@pytest.mark.system
def test_an_ended_job_is_posted_once_signed_and_with_its_headers(service, completed, receiver):
    assert completed["status"] == "COMPLETED"
    [(headers, body)] = receiver.wait("/ok", 1)
    assert headers["Authorization"] == "Bearer receiver-token"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Diarist-Job-Id"] == completed["id"]
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Diarist-Signature"] == f"sha256={expected}"
    sent = json.loads(body)
    assert sent["event"] == "completed"
    assert sent["job"]["id"] == completed["id"] and sent["job"]["status"] == "COMPLETED"
    assert sent["job"]["history"] == completed["history"]


@pytest.mark.system
def test_a_failing_receiver_gets_the_callback_again_until_it_takes_it(service, completed, receiver):
    attempts = receiver.wait("/flaky", 3)
    assert len(attempts) == 3
    # The same callback each time: a receiver can tell a repeat by its event id.
    assert len({body for _, body in attempts}) == 1
    assert len({headers["X-Diarist-Event-Id"] for headers, _ in attempts}) == 1
    with service.client() as client:
        assert client.get(f"/v1/jobs/{completed['id']}").json()["callback_failure_reason"] is None


@pytest.mark.system
def test_a_receiver_that_keeps_failing_is_recorded_on_the_job(service, speech, receiver):
    job = stopped(service, speech, receiver.url("/down", 503))
    attempts = receiver.wait("/down", ATTEMPTS)
    assert len(attempts) == ATTEMPTS
    assert json.loads(attempts[0][1])["event"] == "stopped"
    with service.client() as client:
        job = wait_for_job(client, job["id"], lambda j: j["callback_failure_reason"] is not None, timeout=30)
    assert receiver.url("/down") in job["callback_failure_reason"]
    assert f"HTTP status 503, {ATTEMPTS} attempts" in job["callback_failure_reason"]
    assert job["status"] == "STOPPED"


@pytest.mark.system
def test_a_receiver_that_refuses_the_callback_is_not_asked_again(service, speech, receiver):
    job = stopped(service, speech, receiver.url("/gone", 410))
    with service.client() as client:
        job = wait_for_job(client, job["id"], lambda j: j["callback_failure_reason"] is not None, timeout=30)
    assert job["callback_failure_reason"].endswith("failed: HTTP status 410")
    assert len(receiver.wait("/gone", 1)) == 1


@pytest.mark.system
def test_a_callback_cut_off_by_a_crash_is_sent_again_after_the_restart(service, speech, receiver):
    release = receiver.hold("/crash")
    job = stopped(service, speech, receiver.url("/crash"))
    receiver.wait("/crash", 1)
    service.stop("worker", signal.SIGKILL)  # while the receiver has not answered
    release.set()
    service.start("worker")
    attempts = receiver.wait("/crash", 2, timeout=90)
    assert len({headers["X-Diarist-Event-Id"] for headers, _ in attempts}) == 1
    with service.client() as client:
        assert client.get(f"/v1/jobs/{job['id']}").json()["callback_failure_reason"] is None


@pytest.mark.system
def test_a_cpqd_job_is_posted_to_its_callback_url_and_job_id_in_cpqd_words(service, speech, receiver):
    with service.client() as client, open(speech[0], "rb") as media:
        created = client.post("/trd/v3/job/create", files={"upload_file": ("speech.wav", media, "audio/wav")},
                              data={"callback_urls": receiver.url("/cpqd")})
        assert created.status_code == 200, created.text
        job_id = created.json()["job"]["id"]
        assert client.post(f"/trd/v3/job/stop/{job_id}").status_code == 200
    [(_, body)] = receiver.wait(f"/cpqd/{job_id}", 1)
    job = json.loads(body)["job"]  # CPqD's job object, not the native one
    assert (job["id"], job["status"]) == (job_id, "STOPPED") and "config" in job and "options" not in job


@pytest.mark.unit
def test_each_api_speaks_its_own_words_and_is_handed_the_result_of_a_completed_job(monkeypatch):
    with_result = Surface("with-result", "", [], {}, apis=("with-result",), callback_body=lambda job, result: result,
                          callback_url=lambda url, job_id: f"{url}/{job_id}")
    monkeypatch.setitem(app.BY_API, "with-result", with_result)

    def callback(api: str, status: str, result: dict | None = None) -> callbacks.Callback:
        job = lc.queued(lc.CREATED, lc.make_event("j1", 1, spec={
            "filename": "a.wav", "media": {"key": "media/j1", "md5": "0", "size": 1, "content_type": None},
            "options": {**parse_options({"callback_urls": ["http://r/x"]}, api=api)}}))
        return app.callback({**job, "status": status}, result, status.lower())

    assert callback("with-result", "COMPLETED", {"segments": []}) == callbacks.Callback(["http://r/x/j1"], {"segments": []})
    assert callback("with-result", "FAILED").body is None
    native = callback("diarist", "STOPPED")
    assert native.urls == ["http://r/x"] and native.body["event"] == "stopped"
    assert native.body["job"]["id"] == "j1" and native.body["job"]["options"]["api"] == "diarist"
    assert callback("unknown-api", "STOPPED").body["event"] == "stopped"  # an API no surface speaks: the native words


@pytest.mark.unit
async def test_deliveries_pass_the_url_guard_and_their_reasons_say_nothing_of_what_answered(monkeypatch):
    def reached(what: str) -> None:
        pytest.fail(f"the network fence was reached: {what}")

    install(reached, monkeypatch.setattr)
    receiver = Receiver()
    try:
        async with guarded_client(Allowlist(), 5) as refusing:  # the default: loopback is not allowed
            reason = await callbacks.post(refusing, receiver.url("/refused"), b"{}", {}, attempts=3, backoff=0)
        assert reason == "the address is not allowed" and not receiver.requests["/refused"]  # and not tried again
        async with guarded_client(LOOPBACK, 5) as allowed:
            assert await callbacks.post(allowed, receiver.url("/teapot", 418), b"{}", {}, 3, 0) == "HTTP status 418"
            assert await callbacks.post(allowed, "http://127.0.0.1:9/closed", b"{}", {}, 2, 0) == (
                "connection failed, 2 attempts")
            assert await callbacks.post(allowed, receiver.url("/ok"), b"{}", {}, 1, 0) is None
    finally:
        receiver.server.shutdown()
