"""A job's tail (streams/jobs/tail.py): one that cannot catch up gives up in time and leaves no
consumer behind."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from diarist.infra.topics import TopicSpec, ensure_topics
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
