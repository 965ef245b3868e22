"""The job service on its own (unit tier): submit, read, wait, page, count, result and the
commands, over an in-memory jobs table (tests/fakes.py); its errors, and how a peer's answer
joins this worker's."""
from __future__ import annotations

import asyncio
import json

import pytest

from diarist.api.options import parse_options
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.errors import Conflict, Gone, InvalidCursor, MediaEmpty, MediaTooLarge, NotFound
from diarist.streams.jobs.service import NoPeers, Page, Query
from diarist.streams.jobs.store import result_key

from .fakes import job_service

pytestmark = pytest.mark.unit


@pytest.fixture
def jobs(tmp_path):
    return job_service(tmp_path, max_media_bytes=100)


def submit(jobs, data: bytes = b"RIFF....", tag: str | None = None) -> lc.Job:
    async def go() -> lc.Job:
        media = await jobs.store_bytes(data, "a.wav", "audio/wav")
        return await jobs.create(media, parse_options({"tag": tag}))
    return asyncio.run(go())


def complete(jobs, job: lc.Job, result: dict) -> lc.Job:
    """Runs the job as an inference worker would: started, then completed with a result."""
    key = result_key(job["id"], job["attempt"])
    jobs.blobs.write(key, [json.dumps(result).encode()])
    apply = jobs.store.apply
    job = apply(lc.STARTED, lc.next_event(job, worker="w"))
    return apply(lc.COMPLETED_EVENT, lc.next_event(job, result={"key": key, "md5": "0", "size": 1},
                                                  language="en", language_probability=1.0))


def test_a_submitted_job_is_queued_with_its_media_stored(jobs):
    job = submit(jobs, b"x" * 10, tag="t")
    assert job["status"] == lc.QUEUED and job["version"] == 1
    assert job["spec"]["filename"] == "a.wav" and job["spec"]["options"]["tag"] == "t"
    assert jobs.blobs.read(job["spec"]["media"]["key"]) == b"x" * 10
    assert asyncio.run(jobs.read(job["id"])) == job


def test_media_too_large_or_empty_is_refused_and_leaves_nothing(jobs):
    with pytest.raises(MediaTooLarge, match="100 bytes"):
        asyncio.run(jobs.store_bytes(b"x" * 101, "a.wav"))
    with pytest.raises(MediaEmpty):
        asyncio.run(jobs.store_bytes(b"", "a.wav"))
    assert not [path for path in jobs.blobs.root.rglob("*") if path.is_file()]


def test_a_refused_publish_erases_the_stored_media(jobs):
    async def refuse(name: str, event: lc.Event) -> None:
        raise ConnectionError("broker down")

    jobs.publish = refuse
    media = asyncio.run(jobs.store_bytes(b"x", "a.wav"))
    with pytest.raises(ConnectionError):
        asyncio.run(jobs.create(media, parse_options({})))
    assert not jobs.blobs.path(media.ref["key"]).exists()


def test_unknown_jobs_are_not_found(jobs):
    for call in (jobs.read("nope"), jobs.result("nope"), jobs.stop("nope"), jobs.retry("nope"), jobs.delete("nope")):
        with pytest.raises(NotFound, match="no job nope"):
            asyncio.run(call)


def test_commands_follow_the_state_machine_and_say_which_state_refused(jobs):
    job = submit(jobs)
    with pytest.raises(Conflict) as refused:
        asyncio.run(jobs.retry(job["id"]))
    assert str(refused.value) == "cannot retry the job: a QUEUED job cannot be retried"
    assert refused.value.status == lc.QUEUED
    assert asyncio.run(jobs.stop(job["id"]))["status"] == lc.STOPPED
    assert asyncio.run(jobs.retry(job["id"]))["status"] == lc.QUEUED
    assert asyncio.run(jobs.stop(job["id"]))["status"] == lc.STOPPED
    deleted = asyncio.run(jobs.delete(job["id"]))
    assert deleted["status"] == lc.DELETED and deleted["attempt"] == 2
    assert not jobs.blobs.path(job["spec"]["media"]["key"]).exists()  # media erased with the job


def test_the_result_is_there_once_completed_and_gone_once_deleted(jobs):
    job = submit(jobs)
    with pytest.raises(Conflict, match="its result is there once it is COMPLETED") as early:
        asyncio.run(jobs.result(job["id"]))
    assert early.value.status == lc.QUEUED
    complete(jobs, job, {"segments": ["hello"]})
    assert asyncio.run(jobs.result(job["id"])) == {"segments": ["hello"]}
    asyncio.run(jobs.delete(job["id"]))
    with pytest.raises(Gone):
        asyncio.run(jobs.result(job["id"]))


def test_wait_returns_once_the_job_ends_or_as_it_is_at_the_timeout(jobs):
    job = submit(jobs)

    async def stop_later() -> lc.Job:
        waiting = asyncio.create_task(jobs.wait(job["id"], timeout=5))
        await asyncio.sleep(0.05)
        await jobs.stop(job["id"])
        return await waiting

    assert asyncio.run(stop_later())["status"] == lc.STOPPED
    assert asyncio.run(jobs.wait(submit(jobs)["id"], timeout=0.1))["status"] == lc.QUEUED


def test_pages_are_newest_first_filtered_and_counted(jobs):
    ids = [submit(jobs, tag="a" if n % 2 else "b")["id"] for n in range(5)]
    first = asyncio.run(jobs.page(Query(), limit=3))
    rest = asyncio.run(jobs.page(Query(), limit=3, cursor=first.next_cursor))
    assert [j["id"] for j in first.jobs + rest.jobs] == ids[::-1] and rest.next_cursor is None
    assert [j["id"] for j in asyncio.run(jobs.page(Query(tag="a"), limit=10)).jobs] == [ids[3], ids[1]]
    assert asyncio.run(jobs.count(Query(tag="b"))) == 3
    assert asyncio.run(jobs.count(Query(status=lc.QUEUED, tag="a"))) == 2
    with pytest.raises(InvalidCursor):
        asyncio.run(jobs.page(Query(), limit=3, cursor="not-a-cursor"))


class TwoWorkers(NoPeers):
    """This worker, and a peer that owns the jobs named `theirs`: its answers come from a second service."""

    def __init__(self, other, theirs: set[str]) -> None:
        self.other, self.theirs = other, theirs

    def owner_of(self, job_id: str) -> str | None:
        return "http://peer" if job_id in self.theirs else None

    def others(self) -> list[str]:
        return ["http://peer"]

    async def read(self, peer: str, job_id: str) -> lc.Job:
        return self.other.local_read(job_id)

    async def command(self, peer: str, job_id: str, verb: str) -> lc.Job:
        return await self.other.local_command(job_id, verb)

    async def page(self, peer: str, query: Query, limit: int, cursor: str | None) -> Page:
        return self.other.local_page(query, limit, cursor)

    async def count(self, peer: str, query: Query) -> int:
        return self.other.local_count(query)


def test_a_peer_answers_for_its_jobs_and_listings_merge_both(tmp_path):
    here, there = job_service(tmp_path / "here"), job_service(tmp_path / "there")
    mine, theirs = submit(here), submit(there)
    here.peers = TwoWorkers(there, {theirs["id"]})
    assert asyncio.run(here.read(theirs["id"]))["id"] == theirs["id"]
    assert here.served_by(theirs["id"]) == "http://peer" and here.served_by(mine["id"]) is None
    assert asyncio.run(here.stop(theirs["id"]))["status"] == lc.STOPPED
    assert there.local_read(theirs["id"])["status"] == lc.STOPPED  # the owner's table took the stop
    page = asyncio.run(here.page(Query(), limit=1))
    assert [j["id"] for j in page.jobs] == [theirs["id"]] and page.next_cursor  # newest first, over both
    after = asyncio.run(here.page(Query(), limit=1, cursor=page.next_cursor))
    assert [j["id"] for j in after.jobs] == [mine["id"]]
    assert asyncio.run(here.count(Query())) == 2
