"""The CPqD Transcrição de Diálogos v3 facade (/trd/v3) end to end: real broker, workers and model."""
from __future__ import annotations

import json
import time
import wave
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from diarist.api.cpqd import callback_body

pytestmark = pytest.mark.system

FINISHED = ("COMPLETED", "FAILED", "STOPPED")
SILENT_URLS = ["http://127.0.0.1:9/first", "http://127.0.0.1:9/second"]  # nothing listens on port 9


def upload(path: Path) -> dict:
    return {"upload_file": (path.name, path.read_bytes(), "audio/wav")}


def create(client: httpx.Client, path: Path, tag: str, **fields) -> dict:
    response = client.post("/trd/v3/job/create", params={"tag": tag}, files=upload(path), data=fields)
    assert response.status_code == 200, response.text
    return response.json()["job"]


def wait_until(client: httpx.Client, job_id: str, *statuses: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/trd/v3/job/status/{job_id}").json()["job"]
        if job["status"] in statuses:
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout} s")


def silence(path: Path, seconds: float, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(2 * int(seconds * rate)))
    return path


def words(segments: list[dict]) -> str:
    return " ".join(s["alternatives"][0]["text"] for s in segments).lower()


@pytest.fixture(scope="module")
def completed(service, speech) -> tuple[dict, dict]:
    """A job created with a JSON config and callback URLs, as created and once COMPLETED."""
    config = {"diarization": {"clustering": {"threshold": 0.3}},
              "recognition": {"lm": "builtin:slm/general", "hints.words": ["Kafka:2 [kafka]"]}}
    with service.client() as client:
        created = create(client, speech[0], "cpqd-done", config=json.dumps(config), callback_urls=SILENT_URLS)
        return created, wait_until(client, created["id"], *FINISHED)


@pytest.fixture(scope="module")
def synchronous(service, speech) -> dict:
    """The answer of a synchronous transcription."""
    with service.client() as client:
        response = client.post("/trd/v3/transcribe", params={"tag": "cpqd-sync"}, files=upload(speech[0]), timeout=300)
    assert response.status_code == 200, response.text
    return response.json()


def test_create_answers_the_queued_job_with_its_config(completed):
    created, _ = completed
    assert created["status"] == "QUEUED" and created["tag"] == "cpqd-done" and created["filename"] == "speech.wav"
    assert "started_at" not in created and "completed_at" not in created
    assert datetime.fromisoformat(created["created_at"]).utcoffset() is not None
    assert set(created["media"]) == {"md5", "size"}
    assert created["callback_urls"] == SILENT_URLS and created["failure_reason"] == ""
    config = created["config"]
    assert config["diarization"]["clustering"] == {"threshold": 0.3, "enabled": True}
    assert config["recognition"]["lm"] == "builtin:slm/general"
    assert config["recognition"]["hints_words"] == ["Kafka"]


def test_a_finished_job_tells_its_times_and_media(completed, speech):
    _, job = completed
    assert job["status"] == "COMPLETED", job["failure_reason"]
    at = [datetime.fromisoformat(job[name]) for name in ("created_at", "started_at", "diarized_at", "completed_at")]
    assert at == sorted(at) and all(moment.utcoffset() is not None for moment in at)
    assert job["media"]["size"] == speech[0].stat().st_size and len(job["media"]["md5"]) == 32
    source = job["media"]["input"]
    assert source["format"] == "wav" and source["channels"] == 1 and source["bandwidth"] == source["sample_rate"] / 2
    output = job["media"]["output"]
    assert output["redundant_channel"] is False and len(output["channels"]) == 1
    channel = output["channels"][0]
    assert channel["channel"] == 1 and channel["duration"] > 5 and channel["speech"] > 3
    assert channel["speech"] + channel["silence"] == pytest.approx(channel["duration"], abs=0.01)


def test_the_result_has_scored_segments_and_a_csv_form(service, completed):
    _, job = completed
    with service.client() as client:
        response = client.get(f"/trd/v3/job/result/{job['id']}")
        csv = client.get(f"/trd/v3/job/result/{job['id']}", params={"format": "csv"})
        other = client.get(f"/trd/v3/job/result/{job['id']}", params={"format": "srt"})
    assert response.status_code == 200
    body = response.json()
    assert body["job"]["id"] == job["id"] and body["job"]["status"] == "COMPLETED"
    segments = body["segments"]
    assert "quick brown fox" in words(segments)
    assert all(s["status"] == "RECOGNIZED" and s["start"] <= s["end"] for s in segments)
    alternatives = [s["alternatives"][0] for s in segments]
    assert all(a["lm"] == "builtin:slm/general" and 0 <= a["score"] <= 100 for a in alternatives)
    scored = [w for a in alternatives for w in a["words"]]
    assert scored and all(isinstance(w["score"], int) and 0 <= w["score"] <= 100 for w in scored)
    assert all(w["start_time"] <= w["end_time"] for w in scored)
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0] == "channel,speaker,start,end,word,confidence" and len(lines) == len(scored) + 1
    assert other.status_code == 422


def test_a_completed_job_can_be_neither_stopped_nor_retried(service, completed):
    _, job = completed
    with service.client() as client:
        for verb in ("stop", "retry"):
            response = client.post(f"/trd/v3/job/{verb}/{job['id']}")
            assert response.status_code == 409, response.text
            assert "a COMPLETED job cannot be" in response.json()["detail"]
        assert client.get(f"/trd/v3/job/status/{job['id']}").json()["job"]["status"] == "COMPLETED"


def test_transcribe_answers_the_finished_job_with_segments_then_erases_it(service, synchronous):
    job = synchronous["job"]
    assert job["status"] == "COMPLETED" and job["tag"] == "cpqd-sync"
    assert "lazy dog" in words(synchronous["segments"])
    with service.client() as client:
        assert client.get(f"/trd/v3/job/status/{job['id']}").json()["job"]["status"] == "DELETED"
        assert client.get(f"/trd/v3/job/result/{job['id']}").status_code == 410
    assert not (service.data_dir / "blobs" / "media" / job["id"]).exists()


def test_transcribe_refuses_more_than_two_minutes_and_keeps_nothing(service, tmp_path):
    media = service.data_dir / "blobs" / "media"
    before = set(media.iterdir()) if media.exists() else set()
    with service.client() as client:
        response = client.post("/trd/v3/transcribe", params={"tag": "cpqd-long"},
                               files=upload(silence(tmp_path / "long.wav", 125)))
        assert response.status_code == 413, response.text
        assert "125.0 s" in response.json()["detail"]
        assert client.get("/trd/v3/job", params={"tag": "cpqd-long"}).json()["total"] == 0
    assert (set(media.iterdir()) if media.exists() else set()) == before


def test_listing_pages_from_one_with_a_total(service, completed, synchronous):
    with service.client() as client:
        everything = client.get("/trd/v3/job", params={"limit": 1000}).json()
        assert everything["page"] == 1 and everything["limit"] == 1000
        assert everything["total"] == len(everything["results"]) >= 2
        ids = [entry["job"]["id"] for entry in everything["results"]]
        pages = [client.get("/trd/v3/job", params={"limit": 1, "page": n}).json() for n in range(1, len(ids) + 2)]
        assert [entry["job"]["id"] for page in pages for entry in page["results"]] == ids
        assert pages[-1]["results"] == [] and pages[-1]["total"] == len(ids)
        assert client.get("/trd/v3/job").json()["limit"] == 100
        tagged = client.get("/trd/v3/job", params={"tag": "cpqd-done"}).json()
    assert tagged["total"] == 1 and set(tagged["results"][0]) == {"job"}
    assert tagged["results"][0]["job"]["id"] == completed[1]["id"]


def test_query_filters_and_adds_the_segments_of_completed_jobs(service, completed, synchronous):
    _, job = completed
    day = job["created_at"][:10]

    def found(**params) -> list[dict]:
        response = client.get("/trd/v3/query/job", params=params)
        assert response.status_code == 200, response.text
        return response.json()["results"]

    with service.client() as client:
        [with_result] = found(tag="cpqd-done", result="true")
        assert with_result["job"]["id"] == job["id"] and "fox" in words(with_result["segments"])
        assert [set(entry) for entry in found(tag="cpqd-done")] == [{"job"}]
        [deleted] = found(tag="cpqd-sync", result="true")
        assert deleted["job"]["status"] == "DELETED" and "segments" not in deleted
        assert job["id"] in {e["job"]["id"] for e in found(filename="speech.wav", status="completed")}
        assert found(filename="other.wav") == []
        assert synchronous["job"]["id"] in {e["job"]["id"] for e in found(status="DELETED")}
        assert job["id"] not in {e["job"]["id"] for e in found(status="DELETED")}
        assert len(found(tag="cpqd-done", start_date=job["created_at"])) == 1
        assert found(tag="cpqd-done", end_date=job["created_at"]) == []
        assert len(found(tag="cpqd-done", start_date=day, end_date=day)) == 1


def test_queued_and_running_jobs_stop_retry_and_delete(service, speech, long_speech):
    with service.client() as client:
        running = create(client, long_speech, "cpqd-queue")
        try:
            wait_until(client, running["id"], "IN_PROGRESS")
            queued = create(client, speech[0], "cpqd-queue", callback_urls=",".join(SILENT_URLS),
                            config=["diarization.clustering.enabled=False", "recognition.hints.words=Kafka,topics"])
            assert queued["status"] == "QUEUED" and queued["callback_urls"] == SILENT_URLS
            assert queued["config"]["diarization"]["clustering"]["enabled"] is False
            assert queued["config"]["recognition"]["hints_words"] == ["Kafka", "topics"]
            job = f"/trd/v3/job/{queued['id']}"
            for refused in (client.post(f"/trd/v3/job/retry/{queued['id']}"), client.delete(job)):
                assert refused.status_code == 409 and "QUEUED job cannot be" in refused.json()["detail"]
            assert client.post(f"/trd/v3/job/stop/{queued['id']}").json()["job"]["status"] == "STOPPED"
            assert client.post(f"/trd/v3/job/retry/{queued['id']}").json()["job"]["status"] == "QUEUED"
            assert client.post(f"/trd/v3/job/stop/{queued['id']}").json()["job"]["status"] == "STOPPED"
            deleted = client.delete(job)
            assert deleted.status_code == 200 and deleted.json()["job"]["status"] == "DELETED"
            assert client.get(f"/trd/v3/job/status/{queued['id']}").json()["job"]["status"] == "DELETED"
        finally:
            stopped = client.post(f"/trd/v3/job/stop/{running['id']}")
        assert stopped.json()["job"]["status"] == "STOPPED"


def test_callback_body_is_the_job_object_with_its_segments(service, completed):
    _, job = completed
    with service.client() as client:
        native = client.get(f"/v1/jobs/{job['id']}").json()
        result = client.get(f"/v1/jobs/{job['id']}/result").json()
        answered = client.get(f"/trd/v3/job/result/{job['id']}").json()
    body = callback_body(native, result)
    # The callbacks agent may record a delivery failure between the two reads.
    for job_object in (body["job"], answered["job"]):
        job_object.pop("callback_failure_reason")
    assert body == answered
    assert set(callback_body(native)) == {"job"}


UPLOAD_PROBLEMS = [
    ({"files": {"media": ("a.wav", b"RIFF")}}, 400, "file part named 'upload_file'"),
    ({"files": {"upload_file": ("a.wav", b"")}}, 400, "empty"),
    ({"files": {"upload_file": ("a.wav", b"RIFF")}, "data": {"config": "{not json"}}, 400, "not valid JSON"),
    ({"files": {"upload_file": ("a.wav", b"RIFF")}, "data": {"config": "hints"}}, 400, "neither JSON nor key=value"),
    ({"files": {"upload_file": ("a.wav", b"RIFF")}, "data": {"config": '{"colour": "red"}'}}, 422,
     "unknown config keys: colour"),
    ({"files": {"upload_file": ("a.wav", b"RIFF")}, "data": {"config": "diarization.clustering.threshold=-0.4"}},
     422, "clustering_threshold"),
    ({"files": {"upload_file": ("a.wav", b"RIFF")}, "data": {"config": "recognition.lm=huge"}}, 422, "unknown model"),
    ({"files": {"upload_file": ("a.wav", b"RIFF")}, "data": {"config": ["recognition.lm=base", "recognition.lm=base"]}},
     422, "more than once"),
]
CALLBACK_PROBLEM = ({"files": {"upload_file": ("a.wav", b"RIFF")}, "data": {"callback_urls": "ftp://example.com/hook"}},
                    422, "callback_urls")


@pytest.mark.parametrize("path, fields, status, detail", [
    *(("/trd/v3/job/create", *problem) for problem in [*UPLOAD_PROBLEMS, CALLBACK_PROBLEM]),
    *(("/trd/v3/transcribe", *problem) for problem in UPLOAD_PROBLEMS),
])
def test_malformed_uploads_get_a_problem_document(service, path, fields, status, detail):
    with service.client() as client:
        response = client.post(path, **fields)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]


def test_media_that_cannot_be_read_is_refused_for_synchronous_transcription(service):
    with service.client() as client:
        response = client.post("/trd/v3/transcribe", files={"upload_file": ("a.wav", b"not audio" * 100)})
    assert response.status_code == 422 and "could not be read" in response.json()["detail"]


@pytest.mark.parametrize("path, params", [
    ("/trd/v3/job", {"page": 0}), ("/trd/v3/job", {"limit": 1001}), ("/trd/v3/job", {"page": "first"}),
    ("/trd/v3/query/job", {"status": "LOST"}), ("/trd/v3/query/job", {"start_date": "yesterday"}),
    ("/trd/v3/query/job", {"end_date": "2026-01-31T12:00:00"}), ("/trd/v3/query/job", {"result": "maybe"}),
])
def test_bad_listing_parameters_answer_422(service, path, params):
    with service.client() as client:
        response = client.get(path, params=params)
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"


def test_unknown_jobs_answer_404(service):
    with service.client() as client:
        for response in (client.get("/trd/v3/job/status/nope"), client.get("/trd/v3/job/result/nope"),
                         client.post("/trd/v3/job/stop/nope"), client.post("/trd/v3/job/retry/nope"),
                         client.delete("/trd/v3/job/nope")):
            assert response.status_code == 404 and response.json()["detail"] == "no job nope"


def test_without_a_valid_key_the_answer_is_401(service, speech):
    for key in (None, "not-the-key"):
        with service.client(key) as client:
            for response in (client.get("/trd/v3/job"), client.post("/trd/v3/job/create", files=upload(speech[0]))):
                assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
