"""Server-sent events against the real service (api/events.py): /v1/events gives every job as it
changes, read from the lifecycle topic by each edge; /v1/jobs/{id}/events follows one job to its end;
and with two jobs workers, each edge's streams cover the jobs of the other's partitions."""
from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from .conftest import new_service
from .service import KEY, Service, submit, until_status, wait_for_job

pytestmark = pytest.mark.system

ORDER = {"QUEUED": 0, "IN_PROGRESS": 1, "COMPLETED": 2, "FAILED": 2, "STOPPED": 2, "DELETED": 3}


class Reader(threading.Thread):
    """Reads a text/event-stream in the background: (event, data) pairs, as they come."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.events: list[tuple[str, dict]] = []
        self.opened = threading.Event()
        self.read_first = threading.Event()
        self.ended = threading.Event()
        self.status: int | None = None
        self.content_type = ""
        self.first_line = ""
        self.halt = False
        self.start()

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers={"Authorization": f"Bearer {KEY}"},
                              timeout=httpx.Timeout(30, read=20)) as response:
                self.status, self.content_type = response.status_code, response.headers.get("content-type", "")
                self.opened.set()
                name, data = None, None
                for line in response.iter_lines():
                    if self.halt:
                        return
                    if not self.read_first.is_set():
                        self.first_line = line
                        self.read_first.set()
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                    elif not line and name:
                        self.events.append((name, data))
                        name, data = None, None
        except httpx.HTTPError:  # the service went away under the stream (the test is over)
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def wait(self, predicate, timeout: float = 120) -> list[tuple[str, dict]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(list(self.events)):
                return list(self.events)
            time.sleep(0.1)
        raise TimeoutError(f"not seen in {timeout} s: {self.events[-5:]}")

    def of(self, job_id: str) -> list[dict]:
        return [data for name, data in list(self.events) if name == "job" and data["id"] == job_id]


def sharing(service: Service) -> bool:
    """Whether the jobs worker answers, with its tables recovered, and knows of two jobs workers."""
    for role, process in service.processes.items():
        assert process.poll() is None, f"{role} exited: {service.log(role)[-3000:]}"
    try:
        health = httpx.get(f"{service.url}/healthz", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return False
    return health["checks"]["tables_recovered"] and len(health["jobs_workers"]) == 2


def ended(job_id: str, *statuses: str):
    return lambda events: any(name == "job" and data["id"] == job_id and data["status"] in statuses
                              for name, data in events)


def test_every_change_of_every_job_comes_as_an_event(service, speech):
    everything = Reader(f"{service.url}/v1/events")
    assert everything.opened.wait(30) and everything.status == 200
    assert everything.content_type.startswith("text/event-stream")
    assert everything.read_first.wait(10) and everything.first_line == "retry: 2000"
    try:
        with service.client() as api:
            job = submit(api, speech[0], '{"tag": "events"}')
            one = Reader(f"{service.url}/v1/jobs/{job['id']}/events")
            everything.wait(ended(job["id"], "COMPLETED", "FAILED"))
            states = everything.of(job["id"])
            assert states[-1]["status"] == "COMPLETED" and states[-1]["progress"] == 100.0
            assert states[-1] == api.get(f"/v1/jobs/{job['id']}").json()  # the native view, as read after
            versions = [(s["version"], ORDER[s["status"]], s["progress"]) for s in states]
            assert versions == sorted(versions), "states came out of order"
            assert {s["status"] for s in states} >= {"IN_PROGRESS", "COMPLETED"}

            assert one.ended.wait(30), "the one-job stream did not end after its terminal state"
            assert one.events[-1] == ("end", {"id": job["id"], "status": "COMPLETED"})
            followed = [data for name, data in one.events if name == "job"]
            assert followed[-1]["status"] == "COMPLETED" and len(followed) >= 2
            assert [s["version"] for s in followed] == sorted(s["version"] for s in followed)

            # A job that has ended: its state, then the end, at once.
            again = Reader(f"{service.url}/v1/jobs/{job['id']}/events")
            assert again.ended.wait(10) and [name for name, _ in again.events] == ["job", "end"]
            assert api.get("/v1/jobs/nope/events").status_code == 404

            api.delete(f"/v1/jobs/{job['id']}")
            everything.wait(ended(job["id"], "DELETED"), timeout=30)
    finally:
        everything.halt = True


def test_each_edge_streams_the_jobs_of_every_partition(tmp_path_factory, kafka, speech):
    first = new_service(tmp_path_factory, kafka, "sse-pair")
    second = Service(tmp_path_factory.mktemp("sse-pair-b"), kafka.bootstrap_servers,
                     first.env["DIARIST_NAMESPACE"], blob_dir=first.data_dir / "blobs")
    readers: list[Reader] = []
    try:
        first.start("worker")
        second.start("worker")  # no inference (so /healthz says 503): jobs stay QUEUED until stopped
        deadline = time.monotonic() + 120
        while not all(sharing(s) for s in (first, second)):
            assert time.monotonic() < deadline, "the two jobs workers never shared the partitions"
            time.sleep(0.5)

        on_second = Reader(f"{second.url}/v1/events")
        readers.append(on_second)
        assert on_second.opened.wait(30) and on_second.status == 200
        with first.client() as a, second.client() as b:
            # Job ids are random, so which worker owns a job is chance: submit until each owns one
            # (one owner for all 24 would be a 1 in 8 million split, or a worker that owns nothing).
            jobs, owners = [], {}
            while set(owners.values()) != {first.url, second.url} and len(jobs) < 24:
                jobs.append(submit(a, speech[0], '{"tag": "sse-pair"}'))
                owners[jobs[-1]["id"]] = b.get(f"/v1/jobs/{jobs[-1]['id']}").headers["x-diarist-served-by"]
            assert set(owners.values()) == {first.url, second.url}, f"all {len(jobs)} jobs in one worker's partitions"
            remote = next(job_id for job_id, owner in owners.items() if owner == first.url)
            followed = Reader(f"{second.url}/v1/jobs/{remote}/events")  # a job the other worker owns
            readers.append(followed)
            followed.wait(lambda events: any(name == "job" for name, _ in events), timeout=30)
            assert followed.events[0][1]["status"] == "QUEUED"
            for job in jobs:
                assert a.post(f"/v1/jobs/{job['id']}/stop").json()["status"] == "STOPPED"
            for job in jobs:
                on_second.wait(ended(job["id"], "STOPPED"), timeout=30)
            assert followed.ended.wait(30)
            assert followed.events[-1] == ("end", {"id": remote, "status": "STOPPED"})
            assert wait_for_job(b, remote, until_status("STOPPED"))["status"] == "STOPPED"
    finally:
        for reader in readers:
            reader.halt = True
        first.close()
        second.close()
