"""The stream side for real: the event contract on the topic, media events, and faults."""
from __future__ import annotations

import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.store import job_id_for_request

from .conftest import running_service
from .kafka_tools import produce, read_all
from .service import submit, until_status, wait_for_job

pytestmark = pytest.mark.system

TERMINAL = ("COMPLETED", "FAILED", "STOPPED")


def test_lifecycle_events_are_versioned_avro_in_the_confluent_wire_format(service, kafka, speech):
    with service.client() as client:
        job = submit(client, speech[0])
        wait_for_job(client, job["id"], until_status(*TERMINAL))
    topic = service.env["DIARIST_NAMESPACE"] + ".job-events"
    events = [(name, record) for key, name, record in read_all(kafka.bootstrap_servers, topic) if key == job["id"]]
    versioned = [(name, r["version"]) for name, r in events if name != lc.PROGRESS]
    assert versioned == [(lc.CREATED, 1), (lc.STARTED, 2), (lc.DIARIZED, 3), (lc.COMPLETED_EVENT, 4)]
    assert all(r["version"] == 3 for name, r in events if name == lc.PROGRESS)
    completed = dict(events)[lc.COMPLETED_EVENT]
    assert completed["language"] == "en" and completed["result"]["size"] > 0


def test_a_media_event_from_another_producer_makes_one_job(service, kafka, speech):
    request_id = uuid.uuid4().hex
    key = f"incoming/{request_id}.wav"
    target = service.data_dir / "blobs" / key
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(speech[0], target)
    submission = {
        "request_id": request_id, "occurred_at": lc.now(),
        "spec": {"filename": "call.wav",
                 "media": {"key": key, "md5": "0" * 32, "size": target.stat().st_size, "content_type": "audio/wav"},
                 "options": {"tag": "from-kafka", "language": "en", "model": None, "callback_urls": [], "metadata": None}},
    }
    topic = service.env["DIARIST_NAMESPACE"] + ".media"
    for _ in range(2):  # delivered twice: still one job
        produce(kafka.bootstrap_servers, topic, request_id, "diarist.MediaSubmitted", submission)
    job_id = job_id_for_request(request_id)
    with service.client() as client:
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job_id}").status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.2)
        job = wait_for_job(client, job_id, until_status(*TERMINAL))
        assert job["status"] == "COMPLETED" and job["filename"] == "call.wav"
        listed = client.get("/v1/jobs", params={"tag": "from-kafka"}).json()["jobs"]
    assert [j["id"] for j in listed] == [job_id]


def test_an_inference_worker_killed_mid_job_leaves_it_to_be_completed_once(fresh_service, kafka, speech, long_speech):
    service = fresh_service
    with service.client() as client:
        long_job = submit(client, long_speech)
        short_job = submit(client, speech[0])
        # Mid-run: diarized (decoded, speakers found), transcribing. Progress moves once per batch
        # of windows, and a minute of speech is one batch, so it stays 0 until the end.
        wait_for_job(client, long_job["id"], lambda j: j["status"] == "IN_PROGRESS" and j["diarized_at"])
        service.stop("inference", signal.SIGKILL)
        service.start("inference")
        for job_id in (long_job["id"], short_job["id"]):
            assert wait_for_job(client, job_id, until_status(*TERMINAL), timeout=240)["status"] == "COMPLETED"
        job = client.get(f"/v1/jobs/{long_job['id']}").json()
    assert [h["event"] for h in job["history"]] == ["created", "started", "diarized", "completed"]
    events = read_all(kafka.bootstrap_servers, service.env["DIARIST_NAMESPACE"] + ".job-events")
    completions = [key for key, name, _ in events if name == lc.COMPLETED_EVENT]
    assert completions.count(long_job["id"]) == 1 and completions.count(short_job["id"]) == 1


def engine_pid(inference_pid: int) -> int:
    """The engine process among the inference worker's children (not multiprocessing's tracker)."""
    children = {int(pid) for task in Path(f"/proc/{inference_pid}/task").iterdir()
                for pid in (task / "children").read_text().split()}
    [pid] = [pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    return pid


def test_a_running_job_stops_within_a_second(fresh_service, long_speech, speech):
    service = fresh_service
    with service.client() as client:
        job = submit(client, long_speech)
        wait_for_job(client, job["id"], lambda j: j["status"] == "IN_PROGRESS" and j["diarized_at"])
        scratch = Path(tempfile.gettempdir()) / f"diarist-engine-{engine_pid(service.processes['inference'].pid)}"
        assert any(scratch.rglob("channel-*.f32"))  # the running job's decoded audio
        asked = time.monotonic()
        assert client.post(f"/v1/jobs/{job['id']}/stop").json()["status"] == "STOPPED"
        assert time.monotonic() - asked < 1.0
        # The worker is free at once: the next job does not wait for the stopped one to finish.
        follower = submit(client, speech[0])
        done = wait_for_job(client, follower["id"], until_status(*TERMINAL), timeout=60)
        assert done["status"] == "COMPLETED"
        stopped = client.get(f"/v1/jobs/{job['id']}").json()
    assert stopped["status"] == "STOPPED" and stopped["progress"] < 100
    assert f"job {job['id']} stopped while running" in service.log("inference")
    assert not scratch.exists()  # the killed engine's files went with it


def test_tables_and_index_come_back_from_the_changelog(fresh_service, speech):
    service = fresh_service
    with service.client() as client:
        done = submit(client, speech[0], '{"tag": "survivor"}')
        wait_for_job(client, done["id"], until_status(*TERMINAL))
        before = client.get(f"/v1/jobs/{done['id']}").json()
    service.stop("worker")
    shutil.rmtree(service.data_dir / "state")
    shutil.rmtree(service.data_dir / "index")
    service.start("worker")
    service.wait_healthy()
    with service.client() as client:
        assert client.get(f"/v1/jobs/{done['id']}").json() == before
        deadline = time.monotonic() + 10
        while not (listed := client.get("/v1/jobs", params={"tag": "survivor"}).json()["jobs"]):
            assert time.monotonic() < deadline, "the index was not rebuilt"
            time.sleep(0.2)
        assert [j["id"] for j in listed] == [done["id"]]


def test_an_engine_left_unused_is_unloaded_and_loaded_again_when_asked(tmp_path_factory, kafka, speech):
    for service in running_service(tmp_path_factory, kafka, "idle", DIARIST_MODEL_IDLE_SECONDS="2"):
        with service.client() as client:
            for times in (1, 2):
                job = submit(client, speech[0], '{"model": "tiny.en"}')
                assert wait_for_job(client, job["id"], until_status(*TERMINAL))["status"] == "COMPLETED"
                deadline = time.monotonic() + 20
                while service.log("inference").count("unloading faster-whisper tiny.en") < times:
                    assert time.monotonic() < deadline, "the idle engine was not unloaded"
                    time.sleep(0.5)
            # The default engine stays: the worker can always take a job at once.
            assert "unloading faster-whisper base" not in service.log("inference")
            assert client.get("/healthz").json()["checks"]["model_loaded"]
