"""The URL guard in the real service, through every surface: private, link-local and metadata
addresses are refused at submission (422, or the vendor's 400), before any media is stored, and a
media_url on loopback (which the test services allow) is fetched, its redirects checked hop by hop.

The service runs behind the network fence (tests/fence): its processes cannot look a name up or
connect beyond loopback, even if the guard were broken; each attempt is written to the fence's log,
which must stay empty. Every refused URL here is an address literal, so nothing needs DNS.
"""
from __future__ import annotations

import base64
import http.server
import json
import threading
from functools import partial
from pathlib import Path

import pytest

from .conftest import running_service
from .service import KEY, fenced, until_status, wait_for_job

pytestmark = pytest.mark.system

REFUSED = "points to an address that is not allowed"
PRIVATE = ["http://10.0.0.1/a.wav", "http://169.254.169.254/latest/meta-data/", "http://192.168.0.1:8080/a.wav",
           "http://100.64.0.1/a.wav", "http://[fd00::1]/a.wav", "http://[::ffff:172.16.0.1]/a.wav",
           "http://0x0a000001/a.wav", "http://0300.0250.0.1/a.wav", "http://3232235521/a.wav", "http://0.0.0.0/a.wav"]


@pytest.fixture(scope="module")
def service(tmp_path_factory, kafka, fence_log):
    yield from running_service(tmp_path_factory, kafka, "guard", **fenced(fence_log))


@pytest.fixture(autouse=True)
def nothing_reached_the_fence(fence_log):
    yield
    assert fence_log.read_text() == "", "the service tried to reach beyond loopback"


@pytest.fixture
def no_new_media(service):
    media = service.data_dir / "blobs" / "media"

    def stored() -> set[Path]:
        return {path for path in media.rglob("*") if path.is_file()} if media.exists() else set()

    before = stored()
    yield
    assert stored() == before, "a refused request left media behind"


@pytest.fixture(scope="module")
def files(speech):
    """A loopback file server with the speech, and a path that redirects: /hop?to=<url>."""
    class Files(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/hop?to="):
                self.send_response(302)
                self.send_header("Location", self.path.removeprefix("/hop?to="))
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args) -> None:
            pass

    path, _ = speech
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Files, directory=str(path.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", path.name
    server.shutdown()


def test_the_fence_is_up_and_a_name_that_does_not_resolve_is_422(service, fence_log):
    with service.client() as client:
        response = client.post("/v1/jobs", json={"media_url": "http://media.example/a.wav"})
    assert response.status_code == 422 and response.json()["detail"] == "media_url has a host name that does not resolve"
    assert "lookup 'media.example'" in fence_log.read_text()  # refused by the fence: no resolver was asked
    fence_log.write_text("")


@pytest.mark.parametrize("url", PRIVATE)
def test_a_private_media_url_is_refused_at_submission(service, no_new_media, url):
    with service.client() as client:
        response = client.post("/v1/jobs", json={"media_url": url})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"media_url {REFUSED}"
    assert response.headers["content-type"] == "application/problem+json"


def test_a_loopback_media_url_is_fetched_and_a_redirect_hop_is_checked(service, files):
    base, name = files
    with service.client() as client:
        created = client.post("/v1/jobs", json={"media_url": f"{base}/hop?to=/{name}", "options": {"language": "en"}})
        assert created.status_code == 201, created.text
        assert created.json()["filename"] == "hop"
        redirected = client.post("/v1/jobs", json={"media_url": f"{base}/hop?to=http://10.0.0.1/{name}"})
        assert redirected.status_code == 422 and redirected.json()["detail"] == f"media_url {REFUSED}"
        missing = client.post("/v1/jobs", json={"media_url": f"{base}/nothing.wav"})
        assert missing.json()["detail"] == "media_url could not be fetched: HTTP status 404"
        closed = client.post("/v1/jobs", json={"media_url": "http://127.0.0.1:9/a.wav"})
        assert closed.json()["detail"] == "media_url could not be fetched: connection failed"
        job = wait_for_job(client, created.json()["id"], until_status("COMPLETED", "FAILED"))
        assert job["status"] == "COMPLETED", job["failure_reason"]


@pytest.mark.parametrize("options, detail", [
    ({"callback_urls": ["http://169.254.169.254/hook"]}, f"a callback URL {REFUSED}"),
    ({"callback_urls": ["http://127.0.0.1:9/ok", "http://[fe80::1]/hook"]}, f"a callback URL {REFUSED}"),
    ({"callback_urls": ["http://localhost:9/hook"]}, f"a callback URL {REFUSED}"),
    ({"callback_headers": {"Host": "metadata.google.internal"}}, "callback_headers: header 'Host' may not be set"),
    ({"callback_headers": {"Proxy-Authorization": "x"}}, "callback_headers: header 'Proxy-Authorization' may not be set"),
])
def test_native_callbacks_are_checked_before_the_upload_is_stored(service, no_new_media, options, detail):
    with service.client() as client:
        response = client.post("/v1/jobs", files={"media": ("a.wav", b"RIFF" * 100)},
                               data={"options": json.dumps(options)})
    assert response.status_code == 422 and response.json()["detail"] == detail, response.text


def test_cpqd_callback_urls_are_checked_before_the_upload_is_stored(service, no_new_media):
    with service.client() as client:
        response = client.post("/trd/v3/job/create", files={"upload_file": ("a.wav", b"RIFF" * 100)},
                               data={"callback_urls": "http://127.0.0.1:9/ok,http://10.0.0.2/hook"})
    assert response.status_code == 422 and response.json()["detail"] == f"a callback URL {REFUSED}"


@pytest.mark.parametrize("request_kwargs, detail", [
    ({"json": {"source_config": {"url": "http://10.0.0.1/a.wav"}}}, f"source_config {REFUSED}"),
    ({"json": {"media_url": "http://169.254.169.254/a.wav"}}, f"media_url {REFUSED}"),
    ({"json": {"source_config": {"url": "http://127.0.0.1:9/a.wav", "auth_headers": {"Host": "x"}}}},
     "the headers of source_config: header 'Host' may not be set"),
    ({"json": {"media_url": "http://127.0.0.1:9/a.wav", "notification_config": {"url": "http://192.168.1.1/n"}}},
     f"a callback URL {REFUSED}"),
    ({"json": {"media_url": "http://127.0.0.1:9/a.wav", "callback_url": "http://[::ffff:10.0.0.1]/n"}},
     f"a callback URL {REFUSED}"),
    ({"json": {"media_url": "http://127.0.0.1:9/a.wav", "language": "xx"}}, "ISO 639"),
    ({"files": {"media": ("a.wav", b"RIFF" * 100)},
      "data": {"options": json.dumps({"notification_config": {"url": "http://10.9.9.9/n"}})}}, f"a callback URL {REFUSED}"),
])
def test_rev_refuses_in_its_own_400(service, no_new_media, request_kwargs, detail):
    with service.client() as client:
        response = client.post("/speechtotext/v1/jobs", **request_kwargs)
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]
    assert response.json()["type"] == "https://www.rev.ai/api/v1/errors/invalid-parameters"


@pytest.mark.parametrize("body, detail", [
    ({"media_url": "http://10.0.0.1/a.mp4"}, f"media_url {REFUSED}"),
    ({"media_url": "http://127.0.0.1:9/a.mp4", "provider_params": {"callback": "http://169.254.170.2/v2/"}},
     f"a callback URL {REFUSED}"),
    ({"media_url": "http://127.0.0.1:9/a.mp4", "language": "xx"}, "ISO 639"),
])
def test_nyt_refuses_at_submission(service, no_new_media, body, detail):
    with service.client() as client:
        response = client.post("/captions", json=body)
    assert response.status_code == 422 and detail in response.json()["detail"], response.text


@pytest.mark.parametrize("params, body, detail", [
    ({}, {"url": "http://10.0.0.1/a.wav"}, f"url {REFUSED}"),
    ({"webhook": "http://169.254.169.254/hook"}, {"content": base64.b64encode(b"RIFF" * 100).decode()},
     f"a callback URL {REFUSED}"),
    ({}, {"content": base64.b64encode(b"RIFF" * 100).decode(), "languageCode": "xx-XX"}, "ISO 639"),
])
def test_deepaffects_refuses_in_its_own_400(service, no_new_media, params, body, detail):
    with service.client(None) as client:
        response = client.post("/audio/generic/api/v1/async/asr", params={"apikey": KEY, **params}, json=body)
    assert response.status_code == 400 and detail in response.json()["detail"], response.text
