"""A cluster on one machine (infra/cluster.py): three Kafka brokers (KRaft, replication factor 3,
min.insync.replicas 2), SeaweedFS, two jobs workers and two inference workers. Thirty jobs go in
through both edges; one broker and one inference worker are SIGKILLed mid-run; every job
completes once, listings merge across the workers, and every ending reaches its callback."""
from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import logging
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime

import httpx
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from diarist.infra.broker import KafkaBroker
from diarist.infra.cluster import Cluster
from diarist.infra.settings import Settings
from diarist.infra.topics import TopicError, TopicSpec, default_min_insync, ensure_topics

from .audio import SENTENCES, speak
from .kafka_tools import read_all

JOBS = 30
BEFORE_KILL = 20  # submitted before the kills; the rest while a broker is down
KEY = "cluster-key"
SECRET = "cluster-secret"
NAMESPACE = "tcluster"
QUIET = logging.getLogger("tests.cluster.librdkafka")  # refused connections to the killed broker


class Receiver:
    """Takes every callback with 200 and keeps (job id, event id, signature ok) of each."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, bool]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                signed = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                receiver.received.append((self.headers["X-Diarist-Job-Id"], self.headers["X-Diarist-Event-Id"],
                                          self.headers["X-Diarist-Signature"] == f"sha256={signed}"))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def retrying(call, timeout: float = 60):
    """call() until it does not raise (a request may fail while the cluster moves leaders)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (httpx.HTTPError, AssertionError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def create(client: httpx.Client, path, options: str, n: int) -> dict:
    """POST a job; the Idempotency-Key makes a retry after a lost answer the same job."""
    with path.open("rb") as media:
        answer = client.post("/v1/jobs", files={"media": (path.name, media, "audio/wav")}, data={"options": options},
                             headers={"Idempotency-Key": f"cluster-{n}"})
    assert answer.status_code == 201, answer.text
    return answer.json()


def listing(client: httpx.Client, limit: int = JOBS) -> list[dict]:
    answer = client.get("/v1/jobs", params={"tag": "cluster", "limit": limit})
    assert answer.status_code == 200, answer.text
    return answer.json()["jobs"]


def check_replication(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": QUIET})
    topics = {name: t for name, t in admin.list_topics(timeout=10).topics.items()
              if name.startswith(NAMESPACE) or name == "__consumer_offsets"}
    assert len(topics) >= 6, sorted(topics)
    for name, topic in topics.items():
        assert {len(p.replicas) for p in topic.partitions.values()} == {3}, name
    configs = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name) for name in topics])
    for resource, future in configs.items():
        assert future.result(10)["min.insync.replicas"].value == "2", resource.name


@pytest.mark.unit
def test_replication_settings_default_to_what_the_cluster_has() -> None:
    assert Settings(replication_factor_env="", min_insync_replicas_env="").replication_factor is None
    assert Settings(replication_factor_env="3", min_insync_replicas_env="2").min_insync_replicas == 2
    assert [default_min_insync(rf) for rf in (1, 2, 3, 5)] == [1, 1, 2, 2]


@pytest.mark.system
def test_topics_take_the_replication_asked_for_or_say_why_not(kafka: KafkaBroker) -> None:
    ensure_topics(kafka.bootstrap_servers, [TopicSpec("replicas-default", 2)])  # one broker: 1 replica, min.insync 1
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    [future] = admin.describe_configs([ConfigResource(ResourceType.TOPIC, "replicas-default")]).values()
    assert future.result(10)["min.insync.replicas"].value == "1"
    with pytest.raises(TopicError, match="replication factor 3 needs 3 brokers"):
        ensure_topics(kafka.bootstrap_servers, [TopicSpec("replicas-three", 2)], replication_factor=3)
    with pytest.raises(TopicError, match="min.insync"):
        ensure_topics(kafka.bootstrap_servers, [TopicSpec("replicas-one", 2)], replication_factor=1, min_insync_replicas=2)


@pytest.mark.system
def test_a_cluster_completes_every_job_once_through_a_broker_and_an_inference_worker_lost(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    clips = [speak(SENTENCES[i], tmp / f"clip{i}.wav") for i in range(3)]  # 3 to 5 s each
    receiver = Receiver()
    cluster = Cluster(tmp / "run", brokers=3, jobs_workers=2, inference_workers=2, model="tiny.en",
                      namespace=NAMESPACE, api_key=KEY, inference_threads=1,
                      env={"DIARIST_SESSION_TIMEOUT": "6", "DIARIST_URL_ALLOW": "127.0.0.0/8", "DIARIST_RATE_LIMIT": "0",
                           "DIARIST_CALLBACK_SECRET": SECRET, "DIARIST_CALLBACK_BACKOFF_SECONDS": "0.5",
                           "DIARIST_LOG_LEVEL": "info"})
    began = time.monotonic()
    cluster.start()
    clients = [httpx.Client(base_url=edge.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
               for edge in cluster.edges]
    try:
        ready = time.monotonic()
        check_replication(cluster.kafka.bootstrap_servers)
        events_topic = f"{NAMESPACE}.job-events"
        options = json.dumps({"tag": "cluster", "callback_urls": [receiver.url]})
        ids = [create(clients[n % 2], clips[n % len(clips)], options, n)["id"] for n in range(BEFORE_KILL)]

        # Mid-run: an inference worker that is running a job, and the broker leading most partitions of the events.
        pids = {part.pid: part for part in cluster.inference}
        deadline = time.monotonic() + 120
        while True:
            jobs = listing(clients[0])
            running = {j["id"] for j in jobs if j["status"] == "IN_PROGRESS" and j["progress"] < 50}
            if sum(j["status"] == "COMPLETED" for j in jobs) < 3:  # a few done first: mid-run
                running = set()
            runners = {record["job_id"]: int(record["worker"].rsplit(":", 1)[1])
                       for _, name, record in read_all(cluster.kafka.bootstrap_servers, events_topic)
                       if name == "diarist.JobStarted" and record["job_id"] in running}
            if any(pid in pids for pid in runners.values()):
                break
            assert time.monotonic() < deadline, "no job was ever seen running"
            time.sleep(0.2)
        victim = pids[next(pid for pid in runners.values() if pid in pids)]
        admin = AdminClient({"bootstrap.servers": cluster.kafka.bootstrap_servers, "logger": QUIET})
        leaders = Counter(p.leader for p in admin.list_topics(events_topic, timeout=10)
                          .topics[events_topic].partitions.values())
        del admin  # its connections, refused once the broker is down, would log on stderr
        broker = leaders.most_common(1)[0][0]
        killed_at = datetime.now(UTC)
        cluster.kafka.kill(broker)
        victim.kill()
        in_flight = [job_id for job_id, pid in runners.items() if pid == victim.pid]
        done_before_kill = sum(j["status"] == "COMPLETED" for j in listing(clients[1]))

        # Writes go on with two brokers of three (min.insync.replicas 2).
        t = time.monotonic()
        ids += [retrying(lambda n=n: create(clients[n % 2], clips[n % len(clips)], options, n))["id"]
                for n in range(BEFORE_KILL, JOBS)]
        submit_after_kill = time.monotonic() - t

        deadline = time.monotonic() + 240
        while True:
            statuses = Counter(j["status"] for j in retrying(lambda: listing(clients[0])))
            if statuses["COMPLETED"] == JOBS:
                break
            assert not statuses.keys() - {"QUEUED", "IN_PROGRESS", "COMPLETED"}, statuses
            assert time.monotonic() < deadline, f"not all completed: {statuses}"
            time.sleep(1)
        all_done = time.monotonic()

        # Completed once: one `completed` in each job's history, its first attempt.
        served_by = set()
        for n, job_id in enumerate(ids):
            answer = clients[n % 2].get(f"/v1/jobs/{job_id}")
            served_by.add(answer.headers["x-diarist-served-by"])
            job = answer.json()
            words = Counter(t["event"] for t in job["history"])
            assert (job["status"], job["attempt"], words["completed"], words["started"]) == ("COMPLETED", 1, 1, 1), job
            result = clients[(n + 1) % 2].get(f"/v1/jobs/{job_id}/result")
            assert result.status_code == 200 and result.json()["language"] == "en", result.text
        assert served_by == {edge.url for edge in cluster.edges}

        # The lifecycle topic: every job's completions carry one version, so the fold took one of them.
        events = defaultdict(list)
        for _, name, record in read_all(cluster.kafka.bootstrap_servers, events_topic):
            if record["job_id"] in ids:
                events[record["job_id"]].append((name, record))
        completions = {job_id: [r for name, r in events[job_id] if name == "diarist.JobCompleted"] for job_id in ids}
        assert all(len({r["version"] for r in done}) == 1 for done in completions.values()), completions
        accepted = {job_id: done[0]["event_id"] for job_id, done in completions.items()}
        extra_completions = sum(len(done) - 1 for done in completions.values())
        started_by = {job_id: r["worker"] for job_id in ids for name, r in events[job_id] if name == "diarist.JobStarted"}
        run_again = [job_id for job_id in ids if started_by[job_id].endswith(f":{victim.pid}")
                     and completions[job_id][0]["occurred_at"] > killed_at]
        # The job the killed worker was running was finished by the other one, after the kill.
        assert in_flight and all(completions[job_id][0]["occurred_at"] > killed_at for job_id in in_flight)

        # Listings merge across the workers: a page from either edge lists all 30, and so do pages of 7.
        for client in clients:
            page = client.get("/v1/jobs", params={"tag": "cluster", "limit": JOBS}).json()
            assert [j["id"] for j in page["jobs"]] == ids[::-1] and page["next_cursor"] is None
            merged, cursor = [], None
            while True:
                params = {"tag": "cluster", "limit": 7, **({"cursor": cursor} if cursor else {})}
                page = client.get("/v1/jobs", params=params).json()
                merged += [j["id"] for j in page["jobs"]]
                if not (cursor := page["next_cursor"]):
                    break
            assert merged == ids[::-1]

        # Callbacks: each ending arrives, signed; a repeat (at least once) carries the same event id.
        deadline = time.monotonic() + 60
        while {job for job, _, _ in receiver.received} != set(ids):
            missing = set(ids) - {job for job, _, _ in receiver.received}
            assert time.monotonic() < deadline, f"no callback for {len(missing)} jobs"
            time.sleep(0.5)
        time.sleep(2)  # repeats that are on their way
        received = list(receiver.received)
        assert all(signed for _, _, signed in received)
        by_job = defaultdict(set)
        for job_id, event_id, _ in received:
            by_job[job_id].add(event_id)
        assert {job_id: event_ids for job_id, event_ids in by_job.items()} == {j: {accepted[j]} for j in ids}
        repeats = len(received) - len(ids)

        print(f"\ncluster: ready in {ready - began:.0f} s; {JOBS} jobs through {len(clients)} edges, "
              f"all COMPLETED {all_done - ready:.0f} s after the first submission")
        print(f"killed broker {broker} (leader of {leaders[broker]} of {sum(leaders.values())} event partitions) and "
              f"{victim.name} running {len(in_flight)} job(s), with {done_before_kill} jobs completed; "
              f"{JOBS - BEFORE_KILL} jobs submitted with the broker down in {submit_after_kill:.1f} s")
        print(f"jobs started by {victim.name} and completed by the other after the kill: {len(run_again)}; "
              f"extra JobCompleted on the topic "
              f"(refused by the fold): {extra_completions}; callbacks {len(received)} for {len(ids)} endings "
              f"({repeats} repeats, deduplicated by X-Diarist-Event-Id)")
    except BaseException:
        for part in cluster.parts:
            print(f"--- {part.name} ---\n{part.log_tail()}")
        raise
    finally:
        for client in clients:
            client.close()
        cluster.stop()
        receiver.server.shutdown()
