"""A job's tail (streams/jobs/tail.py): one that cannot catch up gives up in time and leaves no
consumer behind; and the inference worker waits out Kafka rather than failing a job for it."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from diarist.infra.topics import TopicSpec, ensure_topics
from diarist.streams.inference import worker as inference
from diarist.streams.jobs import tail as tails
from diarist.streams.jobs.tail import JobTail

from .service import free_port


def aiokafka_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if "aiokafka" in repr(t.get_coro())]


@pytest.mark.system
async def test_a_tail_that_cannot_catch_up_raises_a_kafka_timeout_and_stops_its_consumer(kafka, monkeypatch):
    ensure_topics(kafka.bootstrap_servers, [TopicSpec("tail-timeout", 1)])
    before = len(aiokafka_tasks())
    monkeypatch.setattr(tails, "CATCH_UP_SECONDS", 0.001)
    with pytest.raises(KafkaTimeoutError, match="not read up to date"):
        async with JobTail(kafka.bootstrap_servers, "tail-timeout", 0, 0, {"id": "job"}):  # type: ignore[typeddict-item]
            pass
    await asyncio.sleep(0.1)
    assert len(aiokafka_tasks()) == before, "the consumer of a failed tail is still running"

    monkeypatch.setattr(tails, "CATCH_UP_SECONDS", 30.0)
    async with JobTail(kafka.bootstrap_servers, "tail-timeout", 0, 0, {"id": "job"}) as tail:  # type: ignore[typeddict-item]
        assert tail.job == {"id": "job"}


@pytest.mark.unit
async def test_a_tail_on_a_cluster_that_is_not_there_raises_and_stops_its_consumer():
    with pytest.raises(KafkaConnectionError):
        async with JobTail(f"127.0.0.1:{free_port()}", "events", 0, 0, {"id": "job"}):  # type: ignore[typeddict-item]
            pass
    await asyncio.sleep(0.1)
    assert aiokafka_tasks() == []


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
