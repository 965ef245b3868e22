"""The NYT captions facade end to end: real broker, real workers, real Whisper model."""
from __future__ import annotations

import http.server
import threading
import time
import uuid
from functools import partial

import pytest

from diarist.api import nyt

from .service import KEY
from .test_api_jobs import wer

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def media_url(speech):
    """The speech fixture served over HTTP, as NYT's media_url takes it."""
    path, _ = speech
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             partial(http.server.SimpleHTTPRequestHandler, directory=str(path.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
    server.shutdown()


@pytest.fixture(scope="module")
def parent_id() -> str:
    return f"video-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def captioned(service, media_url, parent_id) -> tuple[dict, dict]:
    """One captions job of the module: as created, and once done."""
    with service.client() as client:
        response = client.post("/captions", json={
            "media_url": media_url, "parent_id": parent_id, "provider": "3play", "job_type": "captions",
            "provider_params": {"turnaround_level_id": "asr"}, "output_types": ["srt", "vtt"]})
        assert response.status_code == 201, response.text
        created = response.json()
        return created, until_done(client, created["id"])


def until_done(client, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["done"]:
            return job
        time.sleep(0.3)
    raise TimeoutError(f"captions job {job_id} is still {job['status']} after {timeout} s")


def test_a_new_job_is_processing_with_its_outputs_named(captioned, media_url, parent_id):
    created, _ = captioned
    assert created["status"] == "processing" and created["done"] is False
    assert created["parent_id"] == parent_id and created["media_url"] == media_url
    assert created["provider"] == "3play" and created["provider_params"] == {"turnaround_level_id": "asr"}
    assert created["job_type"] == "captions" and created["language"] == "en"
    assert created["created_at"].endswith("+00:00")
    assert created["outputs"] == [{"url": "", "type": kind, "filename": f"speech_{created['id']}.{kind}"}
                                  for kind in ("srt", "vtt")]


def test_a_done_job_links_its_outputs_for_download(service, captioned):
    created, job = captioned
    assert job["status"] == "complete" and job["done"] is True, job
    assert {k: v for k, v in job.items() if k not in ("status", "done", "outputs")} == {
        k: v for k, v in created.items() if k not in ("status", "done", "outputs")}
    with service.client() as client:
        for output in job["outputs"]:
            assert output["url"] == f"/jobs/{job['id']}/download/{output['type']}"
            download = client.get(output["url"])
            assert download.status_code == 200
            assert download.headers["content-disposition"] == f'attachment; filename="{output["filename"]}"'
        srt = client.get(f"/jobs/{job['id']}/download/srt")
        vtt = client.get(f"/jobs/{job['id']}/download/vtt")
        txt = client.get(f"/jobs/{job['id']}/download/txt")
    assert srt.headers["content-type"].startswith("application/x-subrip") and srt.text.startswith("1\n00:00:0")
    assert vtt.headers["content-type"].startswith("text/vtt") and vtt.text.startswith("WEBVTT")
    assert txt.text.startswith("Speaker 0: ")


def test_the_transcript_is_the_captions_words_on_one_line(service, captioned, speech):
    _, job = captioned
    with service.client() as client:
        srt, vtt = (client.get(f"/jobs/{job['id']}/transcript/{kind}") for kind in ("srt", "vtt"))
    assert srt.status_code == 200 and srt.headers["content-type"] == "text/plain; charset=utf-8"
    assert srt.text == vtt.text and "\n" not in srt.text.strip()
    assert wer(speech[1], srt.text) <= 0.15, srt.text


def test_the_callback_body_is_the_job_object(service, captioned):
    _, job = captioned
    with service.client() as client:
        native = client.get(f"/v1/jobs/{job['id']}").json()
    assert nyt.callback_body(native) == job


def test_a_parents_jobs_are_listed_oldest_first_and_one_can_be_cancelled(service, captioned, media_url, parent_id):
    first, _ = captioned
    with service.client() as client:
        second = client.post("/captions", json={"media_url": media_url, "parent_id": parent_id}).json()
        assert second["outputs"][0]["type"] == "vtt"  # NYT's default output
        cancelled = client.post(f"/jobs/{second['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled" and cancelled.json()["done"] is True
        assert client.post(f"/jobs/{second['id']}/cancel").status_code == 409
        for kind in ("download", "transcript"):
            not_ready = client.get(f"/jobs/{second['id']}/{kind}/vtt")
            assert not_ready.status_code == 409 and not_ready.json()["job_status"] == "STOPPED"
        listed = client.get(f"/captions/{parent_id}")
    assert listed.status_code == 200
    assert listed.json() == [{"id": job["id"], "created_at": job["created_at"]} for job in (first, second)]


def test_unknown_jobs_parents_and_formats(service, captioned):
    _, job = captioned
    with service.client() as client:
        for path in ("/jobs/nope", "/jobs/nope/download/srt", "/jobs/nope/transcript/vtt", "/captions/no-such-parent"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.headers["content-type"] == "application/problem+json"
        assert client.post("/jobs/nope/cancel").status_code == 404
        for kind in ("download", "transcript"):
            response = client.get(f"/jobs/{job['id']}/{kind}/dfxp")
            assert response.status_code == 400 and "srt, vtt, txt" in response.json()["detail"]


@pytest.mark.parametrize("request_kwargs, status, detail", [
    ({"json": {"parent_id": "p"}}, 400, "media_url"),
    ({"content": b"{", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"json": {"media_url": "ftp://example.com/a.mp4"}}, 422, "http or https"),
    ({"json": {"media_url": "http://127.0.0.1:1/a.mp4"}}, 422, "could not be fetched"),
    ({"json": {"media_url": "https://example.com/a.mp4", "output_types": ["pdf"]}}, 422, "output_types"),
    ({"json": {"media_url": "https://example.com/a.mp4", "output_types": []}}, 422, "output_types"),
    ({"json": {"media_url": "https://example.com/a.mp4", "provider_params": {"n": 1}}}, 400, "provider_params"),
    ({"json": {"media_url": "https://example.com/a.mp4", "language": "English"}}, 422, "ISO 639"),
])
def test_malformed_submissions_get_a_problem_document(service, request_kwargs, status, detail):
    with service.client() as client:
        response = client.post("/captions", **request_kwargs)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


def test_without_a_valid_key_the_answer_is_401(service):
    for key in (None, "not-the-key"):
        with service.client(key) as client:
            for response in (client.post("/captions", json={"media_url": "https://example.com/a.mp4"}),
                             client.get("/jobs/nope"), client.get("/captions/p")):
                assert response.status_code == 401
    with service.client(KEY) as client:
        assert client.get("/jobs/nope").status_code == 404
