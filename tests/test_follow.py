"""Following jobs for the live views, over the job service of the unit tier: streams/jobs/follow.py
(a job of this worker's table, one another worker owns, heartbeats), the one-job event stream, and
the /v1/events hub's handling of what it reads from the topic (api/events.py); the topic itself is
read in the system tier (tests/test_events.py)."""
from __future__ import annotations

import asyncio
import json

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.testclient import TestClient

from diarist.api import events
from diarist.api.auth import BearerAuth
from diarist.api.options import parse_options
from diarist.api.problems import EXCEPTION_HANDLERS
from diarist.schemas import codec
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.follow import follow, settled, took

from .fakes import job_service

pytestmark = pytest.mark.unit

KEY = "k"


async def new_job(jobs, name: str = "a.wav"):
    media = await jobs.store_bytes(b"RIFF" + b"\0" * 64, name, "audio/wav")
    return await jobs.create(media, parse_options({}))


async def started(jobs, job_id: str) -> lc.Job:
    return await lc_transition(jobs, job_id, lc.STARTED, worker="w")


async def lc_transition(jobs, job_id: str, name: str, **fields) -> lc.Job:
    from diarist.streams.jobs.store import transition
    return await transition(jobs.store, jobs.publish, job_id, name, **fields)


async def progress(jobs, job_id: str, percent: float) -> None:
    job = jobs.local_read(job_id)
    await jobs.publish(lc.PROGRESS, lc.make_event(job_id, job["version"], percent=percent))


class Remote:
    """Peers for which every job is another worker's: `owner`'s."""

    def __init__(self, owner) -> None:
        self.owner = owner
        self.reads = 0

    def owner_of(self, job_id: str) -> str | None:
        return "http://owner"

    def others(self) -> list[str]:
        return ["http://owner"]

    async def read(self, peer: str, job_id: str) -> lc.Job:
        self.reads += 1
        return self.owner.local_read(job_id)


async def test_following_a_job_of_this_worker_gives_each_change_until_it_ends(tmp_path):
    jobs = job_service(tmp_path)
    job = await new_job(jobs)
    changes = follow(jobs, job["id"], idle=5)
    assert (await anext(changes))["status"] == "QUEUED"
    await started(jobs, job["id"])
    assert (await anext(changes))["status"] == "IN_PROGRESS"
    await progress(jobs, job["id"], 40.0)
    assert (await anext(changes))["progress"] == 40.0
    await jobs.stop(job["id"])
    last = await anext(changes)
    assert last["status"] == "STOPPED"
    with pytest.raises(StopAsyncIteration):
        await anext(changes)


async def test_following_says_it_is_still_there_while_nothing_changes(tmp_path):
    jobs = job_service(tmp_path)
    job = await new_job(jobs)
    changes = follow(jobs, job["id"], idle=0.2)
    await anext(changes)
    assert await anext(changes) is None
    await jobs.stop(job["id"])
    assert (await anext(changes))["status"] == "STOPPED"


async def test_a_job_another_worker_owns_is_followed_through_its_peers(tmp_path):
    owner = job_service(tmp_path / "owner")
    here = job_service(tmp_path / "here")
    here.peers = Remote(owner)
    job = await new_job(owner)
    changes = follow(here, job["id"], poll=0.05, idle=5)
    assert (await anext(changes))["status"] == "QUEUED"
    await started(owner, job["id"])
    assert (await anext(changes))["status"] == "IN_PROGRESS"
    await owner.stop(job["id"])
    assert (await anext(changes))["status"] == "STOPPED"
    with pytest.raises(StopAsyncIteration):
        await anext(changes)
    assert here.peers.reads >= 3 and here.store.get(job["id"]) is None


async def test_settled_waits_for_the_fold_of_an_event_seen_on_the_topic(tmp_path):
    owner = job_service(tmp_path / "owner")
    here = job_service(tmp_path / "here")
    here.peers = Remote(owner)
    job = await new_job(owner)
    event = lc.next_event(job, worker="w")

    async def fold_later() -> None:
        await asyncio.sleep(0.3)
        owner.store.apply(lc.STARTED, event)

    folding = asyncio.create_task(fold_later())
    seen = await settled(here, job["id"], lc.STARTED, event, poll=0.05, timeout=5)
    await folding
    assert seen["status"] == "IN_PROGRESS" and seen["version"] == 2
    # an event that never folds (it skips a version): the job as it is, once the time is up
    skipping = lc.make_event(job["id"], 9)
    assert (await settled(here, job["id"], lc.STARTED, skipping, poll=0.05, timeout=0.3))["version"] == 2
    assert await settled(here, "nope", lc.CREATED, lc.make_event("nope", 1), poll=0.05, timeout=0.2) is None


def test_when_a_job_took_an_event():
    job = {"version": 3, "progress": 20.0, "status": "IN_PROGRESS", "callback_failure_reason": None}
    assert took(lc.STARTED, {"version": 3})(job) and not took(lc.STARTED, {"version": 4})(job)
    assert took(lc.PROGRESS, {"version": 3, "percent": 20.0})(job)
    assert not took(lc.PROGRESS, {"version": 3, "percent": 30.0})(job)
    assert took(lc.PROGRESS, {"version": 2, "percent": 90.0})(job)
    assert not took(lc.CALLBACK_FAILED, {"version": 3, "url": "u", "reason": "r"})(job)
    assert took(lc.CALLBACK_FAILED, {"version": 3})({**job, "callback_failure_reason": "x"})


def events_of(text: str) -> list[tuple[str, dict]]:
    found = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
                     and ": " in line)
        if "event" in lines:
            found.append((lines["event"], json.loads(lines["data"])))
    return found


def test_the_stream_of_one_job_ends_after_its_last_state(tmp_path):
    jobs = job_service(tmp_path)
    app = Starlette(routes=events.routes,
                    middleware=[Middleware(BearerAuth, keys=frozenset({KEY}), surfaces=(events.surface,),
                                           public_routes=[])],
                    exception_handlers=EXCEPTION_HANDLERS)
    app.state.jobs = jobs
    with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as client:
        job = client.portal.call(new_job, jobs)
        client.portal.call(jobs.stop, job["id"])
        with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            text = response.read().decode()
        assert text.startswith("retry: 2000\n\n")
        assert events_of(text) == [("job", {**events_of(text)[0][1], "status": "STOPPED"}),
                                   ("end", {"id": job["id"], "status": "STOPPED"})]
        assert events_of(text)[0][1]["id"] == job["id"] and "history" in events_of(text)[0][1]
        missing = client.get("/v1/jobs/nope/events")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        assert client.get("/v1/events", headers={"Authorization": "Bearer wrong"}).status_code == 401


async def test_the_hub_sends_each_job_once_its_owner_folded_the_event_coalescing_bursts(tmp_path):
    jobs = job_service(tmp_path)
    hub = events.EventHub(jobs, "", "topic", 1)
    subscriber = events.Subscriber()
    hub.subscribers.add(subscriber)
    job = await new_job(jobs)
    first = lc.next_event(job, worker="w")
    second = {**lc.make_event(job["id"], 2, percent=10.0)}
    hub._seen(codec().encode(lc.STARTED, first))  # seen on the topic before the fold took it
    hub._seen(codec().encode(lc.PROGRESS, second))
    hub._seen(b"not avro")  # poison: read past
    jobs.store.apply(lc.STARTED, first)
    jobs.store.apply(lc.PROGRESS, second)
    sent = await asyncio.wait_for(subscriber.queue.get(), 5)
    (name, state), = events_of(sent)
    assert name == "job" and state["status"] == "IN_PROGRESS" and state["progress"] == 10.0
    await asyncio.sleep(0.2)
    assert subscriber.queue.empty()  # the two events came as one state


def test_a_subscriber_that_lags_too_far_is_ended():
    subscriber = events.Subscriber(size=2)
    assert subscriber.put("a") and subscriber.put("b")
    assert not subscriber.put("c") and subscriber.closed
    assert [subscriber.queue.get_nowait(), subscriber.queue.get_nowait()] == ["a", "b"]
    assert not subscriber.put("d")


def test_events_are_one_line_of_json():
    assert events.sse("job", {"text": "a\nb", "name": "é"}) == 'event: job\ndata: {"text":"a\\nb","name":"é"}\n\n'

