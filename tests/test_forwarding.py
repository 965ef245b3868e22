"""Two jobs workers split the partitions; each edge answers for every job (interactive queries)."""
from __future__ import annotations

import time

import pytest

from .conftest import new_service
from .service import Service, submit, until_status, wait_for_job

pytestmark = pytest.mark.system


def test_every_edge_answers_for_every_job(tmp_path_factory, kafka, speech):
    first = new_service(tmp_path_factory, kafka, "pair")
    second = Service(tmp_path_factory.mktemp("pair-b"), kafka.bootstrap_servers,
                     first.env["DIARIST_NAMESPACE"], blob_dir=first.data_dir / "blobs")
    try:
        first.start("worker")
        first.start("inference")
        second.start("worker")
        for service in (first, second):
            service.wait_healthy()
        deadline = time.monotonic() + 60
        while any(len(s.wait_healthy()["jobs_workers"]) < 2 for s in (first, second)):
            assert time.monotonic() < deadline, "the two jobs workers never shared the partitions"
            time.sleep(0.5)

        with first.client() as a, second.client() as b:
            ids = []
            for n in range(12):  # twelve jobs: all in one worker's partitions only once in 2048 runs
                creator, stopper = (a, b) if n % 2 == 0 else (b, a)
                job = submit(creator, speech[0], '{"tag": "pair"}')
                ids.append(job["id"])
                assert stopper.post(f"/v1/jobs/{job['id']}/stop").json()["status"] == "STOPPED"
            served_by = {b.get(f"/v1/jobs/{job_id}").headers["x-diarist-served-by"] for job_id in ids}
            assert served_by == {first.url, second.url}
            for client in (a, b):
                page = client.get("/v1/jobs", params={"tag": "pair", "limit": 7}).json()
                rest = client.get("/v1/jobs", params={"tag": "pair", "limit": 7, "cursor": page["next_cursor"]}).json()
                assert [j["id"] for j in page["jobs"] + rest["jobs"]] == ids[::-1]
                assert rest["next_cursor"] is None
                assert all(j["status"] == "STOPPED" for j in page["jobs"] + rest["jobs"])
            done = wait_for_job(b, submit(b, speech[0])["id"], until_status("COMPLETED", "FAILED"))
            assert done["status"] == "COMPLETED"
            for client in (a, b):
                assert client.get(f"/v1/jobs/{done['id']}/result").json()["language"] == "en"
    finally:
        first.close()
        second.close()
