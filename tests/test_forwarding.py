"""Two jobs workers split the partitions; each edge answers for every job (interactive queries)."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import httpx
import pytest

from diarist.api.forwarding import HttpPeers
from diarist.api.problems import Problem
from diarist.streams.jobs.service import Query

from .conftest import new_service
from .service import Service, submit, until_status, wait_for_job


def peers(client: httpx.AsyncClient, max_in_flight: int = 4) -> HttpPeers:
    worker = SimpleNamespace(settings=SimpleNamespace(api_keys=lambda: frozenset({"key"})))
    return HttpPeers(worker, client, max_in_flight=max_in_flight)  # type: ignore[arg-type]


@pytest.mark.unit
async def test_forwards_beyond_the_bound_are_refused_at_once_and_the_rest_answered():
    release = asyncio.Event()

    async def owner(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json={"count": 7})

    async with httpx.AsyncClient(transport=httpx.MockTransport(owner)) as client:
        forwarding = peers(client, max_in_flight=4)
        waiting = [asyncio.create_task(forwarding.count("http://owner", Query())) for _ in range(4)]
        await asyncio.sleep(0.05)
        with pytest.raises(Problem) as refused:
            await forwarding.count("http://owner", Query())
        assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "1"}
        release.set()
        assert await asyncio.gather(*waiting) == [7, 7, 7, 7]
        assert forwarding.in_flight == 0
        assert await forwarding.count("http://owner", Query()) == 7


@pytest.mark.unit
async def test_an_owner_that_does_not_answer_in_time_is_a_504_and_one_that_is_gone_a_502():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(30)  # reads the request, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(0.5)) as client:
            forwarding = peers(client)
            with pytest.raises(Problem) as late:
                await forwarding.read(f"http://127.0.0.1:{port}", "job")
            assert late.value.status == 504 and "did not answer in time" in late.value.detail
            server.close()
            await server.wait_closed()
            with pytest.raises(Problem) as gone:
                await forwarding.read(f"http://127.0.0.1:{port}", "job")
            assert gone.value.status == 502 and "cannot be reached" in gone.value.detail
            assert forwarding.in_flight == 0
    finally:
        server.close()


@pytest.mark.system
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
        # Every topic a worker subscribes to exists (Faust's leader-election topic is not asked for).
        for service, role in ((first, "worker"), (first, "inference"), (second, "worker")):
            assert "not found in cluster metadata" not in service.log(role), f"{role}: {service.log(role)[-2000:]}"
    finally:
        first.close()
        second.close()
