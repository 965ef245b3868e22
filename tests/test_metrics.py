"""GET /metrics on the edge and on an inference worker's own port, and JSON logs with job_id, for real:
a service with DIARIST_LOG_FORMAT=json and DIARIST_INFERENCE_METRICS_PORT runs a job whose
callback fails once before it is taken, and a value that is not diarist Avro lands on its topic."""
from __future__ import annotations

import json
import time

import httpx
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from .conftest import running_service
from .service import free_port, submit, until_status, wait_for_job
from .test_callbacks import Receiver

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def inference_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def service(tmp_path_factory, kafka, inference_port):
    yield from running_service(tmp_path_factory, kafka, "metrics", DIARIST_LOG_FORMAT="json",
                               DIARIST_INFERENCE_METRICS_PORT=str(inference_port),
                               DIARIST_CALLBACK_BACKOFF_SECONDS="0.2")


@pytest.fixture(scope="module")
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) -> value, from the Prometheus text format."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in found.items() if n == name and wanted <= got)


def scrape(service) -> dict:
    with service.client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain"), response.text
    return samples(response.text)


@pytest.fixture(scope="module")
def completed(service, speech, receiver):
    """Metrics before, the job (its callback fails once, then is taken), and metrics after."""
    before = scrape(service)
    options = {"callback_urls": [receiver.url("/flaky", 503, 200)], "tag": "metrics"}
    with service.client() as client:
        job = submit(client, speech[0], json.dumps(options))
        job = wait_for_job(client, job["id"], until_status("COMPLETED", "FAILED"))
    assert job["status"] == "COMPLETED", job["failure_reason"]
    receiver.wait("/flaky", 2)
    return before, job


def test_metrics_need_the_api_key(service):
    with service.client(key=None) as client:
        assert client.get("/metrics").status_code == 401


def test_the_edge_counts_jobs_callbacks_and_requests(service, completed):
    before, job = completed
    deadline = time.monotonic() + 30
    while True:  # the callback's outcome is counted once the delivery ended
        after = scrape(service)
        if value(after, "diarist_callback_deliveries_total", outcome="delivered") >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for name in ("diarist_jobs_submitted_total", "diarist_jobs_completed_total"):
        assert value(after, name, api="diarist") >= value(before, name, api="diarist") + 1, name
    assert value(after, "diarist_jobs_failed_total") == value(before, "diarist_jobs_failed_total")
    assert value(after, "diarist_jobs", status="COMPLETED", api="diarist") >= 1
    assert value(after, "diarist_jobs", status="QUEUED") + value(after, "diarist_jobs", status="IN_PROGRESS") == 0
    assert value(after, "diarist_callback_deliveries_total", outcome="delivered") >= 1
    assert value(after, "diarist_callback_retries_total") >= 1
    posted = value(after, "diarist_http_requests_total", route="/v1/jobs", method="POST", status="201")
    assert posted >= 1
    assert value(after, "diarist_http_requests_total", route="/v1/jobs/{job_id}", method="GET", status="200") >= 1
    assert value(after, "diarist_http_request_duration_seconds_count", route="/v1/jobs", method="POST") >= posted
    assert value(after, "diarist_http_request_duration_seconds_bucket", route="/v1/jobs", method="POST", le="+Inf") >= 1
    ns = service.env["DIARIST_NAMESPACE"]
    assert ("diarist_inference_queue_depth", frozenset()) in after
    assert {f"{ns}-inference", f"{ns}-callbacks", ns} <= {dict(labels)["group"] for (name, labels) in after
                                                          if name == "diarist_consumer_lag"}


def test_refused_and_unrouted_requests_count_by_template(service):
    with service.client(key="wrong") as client:
        client.get("/v1/jobs/some-job")
        client.get("/no/such/path/at/all")
    found = scrape(service)
    assert value(found, "diarist_http_requests_total", route="/v1/jobs/{job_id}", status="401") >= 1
    assert value(found, "diarist_http_requests_total", route="unmatched", status="401") >= 1
    assert not any("some-job" in str(labels) for _, labels in found)


def test_each_inference_worker_serves_its_stage_timings(service, completed, inference_port):
    response = httpx.get(f"http://127.0.0.1:{inference_port}/metrics", timeout=10)
    assert response.status_code == 200
    found = samples(response.text)
    for stage in ("decode", "vad", "diarization", "language", "transcription"):
        assert value(found, "diarist_inference_stage_seconds_count", stage=stage) >= 1, stage
    assert value(found, "diarist_inference_stage_seconds_sum", stage="transcription") > 0
    assert value(found, "diarist_inference_real_time_factor_count") >= 1
    assert 0 < value(found, "diarist_inference_real_time_factor_sum") < 10
    assert value(found, "diarist_inference_runs_total", outcome="completed") >= 1


def test_a_value_that_is_not_diarist_avro_is_counted_as_a_dead_letter(service, completed):
    topic = f"{service.env['DIARIST_NAMESPACE']}.job-events"
    producer = Producer({"bootstrap.servers": service.env["DIARIST_BOOTSTRAP_SERVERS"], "acks": "all"})
    producer.produce(topic, key=b"poison", value=b"not avro at all")
    assert producer.flush(10) == 0
    deadline = time.monotonic() + 30
    while value(found := scrape(service), "diarist_dead_letters_total", agent="fold-events", topic=topic) < 1:
        assert time.monotonic() < deadline, "the dead letter was not counted"
        time.sleep(0.5)
    assert value(found, "diarist_dead_letters_total", kind="decode") >= 1


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_logs_are_one_object_a_line_with_the_job_id(service, completed):
    _, job = completed
    worker = json_lines(service.log("worker"))  # every line must parse
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in worker)
    assert any(entry.get("job_id") == job["id"] and "COMPLETED" in entry["message"] for entry in worker)
    inference_lines = [line for line in service.log("inference").splitlines() if line.startswith("{")]
    inference = json_lines("\n".join(inference_lines))
    assert any(entry.get("job_id") == job["id"] and "s of media in" in entry["message"] for entry in inference)


@pytest.mark.parametrize("log_format", ["xml"])
def test_an_unknown_log_format_stops_the_worker_at_once(tmp_path_factory, kafka, log_format):
    with pytest.raises(RuntimeError, match="json or text"):
        for _ in running_service(tmp_path_factory, kafka, "badlog", DIARIST_LOG_FORMAT=log_format):
            pass
