"""Retention end to end: a job with delete_after_seconds is deleted that long after it ended."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import pytest

from .service import submit, until_status, wait_for_job

pytestmark = pytest.mark.system


def ended_at(job: dict) -> datetime:
    return datetime.fromisoformat(job["history"][-1]["at"])


def test_a_completed_job_is_deleted_when_its_retention_runs_out(service, speech):
    with service.client() as client:
        job = submit(client, speech[0], json.dumps({"delete_after_seconds": 1}))
        completed = wait_for_job(client, job["id"], until_status("COMPLETED", "FAILED"))
        assert completed["status"] == "COMPLETED", completed["failure_reason"]
        deleted = wait_for_job(client, job["id"], until_status("DELETED"), timeout=30)
        assert ended_at(deleted) - ended_at(completed) >= timedelta(seconds=1)
        assert client.get(f"/v1/jobs/{job['id']}/result").status_code == 410
    assert not (service.data_dir / "blobs" / "media" / job["id"]).exists()
    assert not (service.data_dir / "blobs" / "results" / job["id"]).exists()


def test_a_retention_of_zero_deletes_at_once_and_none_keeps_the_job(service, speech):
    with service.client() as client:
        kept = submit(client, speech[0])
        deleted = submit(client, speech[0], json.dumps({"delete_after_seconds": 0}))
        for job in (kept, deleted):
            assert client.post(f"/v1/jobs/{job['id']}/stop").status_code == 200
        wait_for_job(client, deleted["id"], until_status("DELETED"), timeout=10)
        time.sleep(2)  # a sweep or two later
        assert client.get(f"/v1/jobs/{kept['id']}").json()["status"] == "STOPPED"
