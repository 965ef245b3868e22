"""The inference worker (streams/inference/worker.py) waits out Kafka rather than failing a job
for it, fails a job that fails three times for itself, and clears the scratch of killed processes."""
from __future__ import annotations

import os
import subprocess
import tempfile

import pytest
from aiokafka.errors import KafkaTimeoutError

from diarist.streams.inference import worker as inference


@pytest.fixture
def no_waiting(monkeypatch):
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(inference.asyncio, "sleep", sleep)
    return slept


def bare_worker(run, fail_queued) -> inference.InferenceWorker:
    worker = object.__new__(inference.InferenceWorker)  # only what _attempts uses
    worker.run = run  # type: ignore[method-assign]
    worker._fail_queued = fail_queued  # type: ignore[method-assign]
    return worker


@pytest.mark.unit
async def test_kafka_not_answering_is_waited_out_and_never_fails_the_job(no_waiting):
    calls, failed = [], []

    async def run(*args) -> None:
        calls.append(args)
        if len(calls) <= 6:
            raise KafkaTimeoutError("a leader is moving")

    async def fail_queued(*args) -> None:
        failed.append(args)

    await bare_worker(run, fail_queued)._attempts("diarist.JobCreated", {"job_id": "j"}, 0, 1)  # type: ignore[typeddict-item]
    assert len(calls) == 7 and failed == []
    assert no_waiting == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0], "backs off, up to 30 s"


@pytest.mark.unit
async def test_a_job_that_fails_three_times_for_itself_is_failed_with_the_reason(no_waiting):
    calls, failed = [], []

    async def run(*args) -> None:
        calls.append(args)
        raise ValueError("bad audio")

    async def fail_queued(*args) -> None:
        failed.append(args)

    await bare_worker(run, fail_queued)._attempts("diarist.JobCreated", {"job_id": "j"}, 0, 1)  # type: ignore[typeddict-item]
    assert len(calls) == inference.RUN_ATTEMPTS
    assert [reason for *_, reason in failed] == ["ValueError: bad audio"]


@pytest.mark.unit
def test_scratch_left_by_killed_processes_is_removed_and_the_living_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = [tmp_path / f"diarist-engine-{gone.pid}", tmp_path / f"diarist-media-{gone.pid}"]
    living = [tmp_path / f"diarist-engine-{os.getpid()}", tmp_path / f"diarist-media-{os.getpid()}",
              tmp_path / f"diarist-audio-{gone.pid}", tmp_path / "diarist-engine-x"]
    for directory in dead + living:
        (directory / "audio").mkdir(parents=True)
    assert sorted(inference.remove_orphaned_scratch()) == sorted(dead)
    assert [d for d in dead + living if d.exists()] == living
