"""Idempotency-Key on every create route: the same key with the same request gives back the same
job (the first answer's status and body), with another request 422, per API key; kept in the jobs
table, so it survives a restart. Unit: the job service's decision over an in-memory table
(tests/fakes.py) and the edge over it; system: through the real service."""
from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.testclient import TestClient

from diarist.api import app as edge
from diarist.api import idempotency, ingest
from diarist.api.auth import BearerAuth
from diarist.api.options import parse_options
from diarist.api.problems import EXCEPTION_HANDLERS
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.errors import IdempotencyMismatch, JobExists
from diarist.streams.jobs.service import Once

from .conftest import running_service
from .fakes import job_service
from .service import KEY, wait_for_job
from .test_service import TwoWorkers

KEY_HEADER = "Idempotency-Key"


def blobs_in(jobs) -> list[str]:
    return sorted(str(path.relative_to(jobs.blobs.root)) for path in jobs.blobs.root.rglob("*") if path.is_file())


# -- the job service's decision (unit) -------------------------------------------------------------

@pytest.fixture
def jobs(tmp_path):
    return job_service(tmp_path)


def create(jobs, data: bytes, once: Once | None, options: dict | None = None) -> lc.Job:
    async def go() -> lc.Job:
        media = await jobs.store_bytes(data, "a.wav", "audio/wav")
        return await jobs.create(media, parse_options(options or {}), once)
    return asyncio.run(go())


ONCE = Once("j" * 32, "k" * 64, "f" * 64)


@pytest.mark.unit
def test_the_same_request_twice_makes_one_job_and_answers_it_as_created(jobs):
    first = create(jobs, b"audio", ONCE)
    assert first["id"] == ONCE.job_id and first["version"] == 1
    assert first["spec"]["idempotency"] == {"key": ONCE.key, "fingerprint": ONCE.fingerprint}
    stored = blobs_in(jobs)
    again = create(jobs, b"audio", ONCE)
    assert again == first
    assert blobs_in(jobs) == stored, "the repeat's media is erased, the job's kept"
    assert [name for name, _ in jobs.publish.published] == [lc.CREATED]


@pytest.mark.unit
def test_a_repeat_after_the_job_moved_on_answers_the_first_answer(jobs):
    first = create(jobs, b"audio", ONCE)
    job = jobs.store.apply(lc.STARTED, lc.next_event(first, worker="w"))
    jobs.store.apply(lc.FAILED_EVENT, lc.next_event(job, reason="no"))
    assert asyncio.run(jobs.read(first["id"]))["status"] == lc.FAILED
    assert create(jobs, b"audio", ONCE) == first


@pytest.mark.unit
def test_the_same_key_for_another_request_is_refused_and_leaves_the_job_as_it_was(jobs):
    first = create(jobs, b"audio", ONCE)
    stored = blobs_in(jobs)
    other = Once(ONCE.job_id, ONCE.key, "0" * 64)
    with pytest.raises(IdempotencyMismatch, match="used for a different request"):
        create(jobs, b"other audio", other)
    assert blobs_in(jobs) == stored
    assert jobs.blobs.read(first["spec"]["media"]["key"]) == b"audio"
    with pytest.raises(IdempotencyMismatch):
        asyncio.run(jobs.earlier(other))


@pytest.mark.unit
def test_earlier_knows_no_job_before_the_first_create(jobs):
    assert asyncio.run(jobs.earlier(ONCE)) is None
    first = create(jobs, b"audio", ONCE)
    assert asyncio.run(jobs.earlier(ONCE)) == first


@pytest.mark.unit
@pytest.mark.parametrize("same_request", [True, False])
def test_two_racing_creates_make_one_job_and_the_later_one_answers_as_a_repeat(jobs, same_request):
    """Both found no job (earlier() ran before either was folded) and both published a created
    event: the fold takes the first; the second finds the job made with other media."""
    first = create(jobs, b"audio", ONCE)
    stored = blobs_in(jobs)

    async def nothing_yet(once, media=None):
        return None

    jobs.earlier = nothing_yet
    racer = ONCE if same_request else Once(ONCE.job_id, ONCE.key, "0" * 64)
    if same_request:
        assert create(jobs, b"audio", racer) == first
    else:
        with pytest.raises(IdempotencyMismatch):
            create(jobs, b"other audio", racer)
    assert blobs_in(jobs) == stored, "the loser's media is erased"
    assert asyncio.run(jobs.read(first["id"]))["version"] == 1


@pytest.mark.unit
def test_a_job_made_without_the_key_is_not_taken_for_a_repeat(jobs):
    """DeepAffects derives job ids from request_ids: a request_id reused under an Idempotency-Key
    finds a job that the key did not make (JobExists, 409), as does a plain create that lost a race."""
    plain = create(jobs, b"audio", None)
    with pytest.raises(JobExists):
        create(jobs, b"audio", Once(plain["id"], ONCE.key, ONCE.fingerprint))

    async def race() -> None:
        media = await jobs.store_bytes(b"more", "a.wav")
        from dataclasses import replace
        await jobs.create(replace(media, job_id=plain["id"]), parse_options({}))

    stored = blobs_in(jobs)
    with pytest.raises(JobExists):
        asyncio.run(race())
    assert blobs_in(jobs) == stored


@pytest.mark.unit
def test_whichever_worker_takes_the_repeat_finds_the_job_through_its_owner(tmp_path):
    """`there` owns the key's job (its partition); `here` publishes to the same topic, folded by the owner."""
    here, there = job_service(tmp_path / "here"), job_service(tmp_path / "there")
    here.peers, here.publish = TwoWorkers(there, {ONCE.job_id}), there.publish
    first = create(here, b"audio", ONCE)
    assert there.local_read(ONCE.job_id)["version"] == 1 and not here.store.table
    assert create(there, b"audio", ONCE) == first == create(here, b"audio", ONCE)
    with pytest.raises(IdempotencyMismatch):
        create(here, b"audio", Once(ONCE.job_id, ONCE.key, "0" * 64))
    assert len(there.store.table) == 1 and len(there.publish.published) == 1


@pytest.mark.unit
def test_as_created_is_the_job_the_created_event_made(jobs):
    first = create(jobs, b"audio", None)
    job = jobs.store.apply(lc.STARTED, lc.next_event(first, worker="w"))
    assert lc.as_created(job) == first == lc.as_created(first)


# -- the edge over the job service (unit) ----------------------------------------------------------

@pytest.fixture
def client(jobs):
    app = Starlette(routes=edge.routes, exception_handlers=EXCEPTION_HANDLERS,
                    middleware=[Middleware(BearerAuth, keys=frozenset({"a", "b"}), surfaces=edge.SURFACES,
                                           public_routes=edge.DOC_ROUTES)])
    app.state.jobs = jobs
    return TestClient(app)


def post(client, key: str | None, api_key: str = "a", options: dict | None = None, data: bytes = b"audio",
         path: str = "/v1/jobs", part: str = "media") -> httpx.Response:
    headers = {"Authorization": f"Bearer {api_key}", **({KEY_HEADER: key} if key is not None else {})}
    return client.post(path, headers=headers, files={part: ("a.wav", data, "audio/wav")},
                       data={"options": json.dumps(options or {})} if part == "media" else None)


@pytest.mark.unit
def test_native_same_key_same_request_answers_the_same_status_and_body(client, jobs):
    first = post(client, "k1", options={"tag": "x"})
    assert first.status_code == 201, first.text
    again = post(client, "k1", options={"tag": "x"})
    assert (again.status_code, again.content, again.headers["location"]) == (201, first.content,
                                                                             first.headers["location"])
    assert len(jobs.store.table) == 1
    other = post(client, "k1", options={"tag": "y"})
    assert other.status_code == 422 and other.json()["detail"] == idempotency.MISMATCH
    assert post(client, "k1", data=b"other audio").status_code == 422
    assert post(client, None).json()["id"] != first.json()["id"], "no key: a new job each time"


@pytest.mark.unit
def test_keys_are_per_api_key_and_per_surface(client, jobs):
    a = post(client, "shared").json()
    b = post(client, "shared", api_key="b").json()
    assert a["id"] != b["id"]
    cpqd = post(client, "shared", path="/trd/v3/job/create", part="upload_file")
    assert cpqd.status_code == 200, cpqd.text
    assert cpqd.json()["job"]["id"] not in (a["id"], b["id"])
    assert len(jobs.store.table) == 3


@pytest.mark.unit
@pytest.mark.parametrize("bad", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_refused(client, bad):
    response = client.post("/v1/jobs", headers={"Authorization": "Bearer a", KEY_HEADER: bad.encode("latin-1")},
                           files={"media": ("a.wav", b"audio", "audio/wav")})
    assert response.status_code == 400, response.text
    assert "Idempotency-Key" in response.json()["detail"]


@pytest.mark.unit
def test_the_longest_key_is_taken(client):
    assert post(client, "~" * 255).status_code == 201


@pytest.mark.unit
def test_a_repeated_media_url_request_is_answered_without_fetching(client, jobs, monkeypatch):
    fetched = []

    async def fetch(url, jobs, headers=None, name="media_url", job_id=None):  # no packet leaves the machine
        fetched.append(url)
        return await jobs.store_bytes(b"audio", "a.wav")

    monkeypatch.setattr(ingest, "fetch", fetch)
    body = {"media_url": "https://media.example/a.wav", "options": {"tag": "u"}}
    headers = {"Authorization": "Bearer a", KEY_HEADER: "url-key"}
    first = client.post("/v1/jobs", headers=headers, json=body)
    assert first.status_code == 201, first.text
    again = client.post("/v1/jobs", headers=headers, json=body)
    assert (again.status_code, again.content) == (201, first.content)
    assert fetched == [body["media_url"]]
    changed = client.post("/v1/jobs", headers=headers, json={**body, "options": {"tag": "v"}})
    assert changed.status_code == 422 and fetched == [body["media_url"]]


@pytest.mark.unit
def test_deepaffects_repeats_answer_the_same_request_id(client, jobs):
    def submit(key: str | None, audio: bytes = b"audio", request_id: str | None = None) -> httpx.Response:
        params = {"apikey": "a", **({"request_id": request_id} if request_id else {})}
        return client.post("/audio/generic/api/v2/async/diarize", params=params,
                           headers={KEY_HEADER: key} if key else {},
                           json={"content": base64.b64encode(audio).decode(), "languageCode": "en-US"})

    first = submit("da-1")
    assert first.status_code == 202, first.text
    again = submit("da-1")
    assert (again.status_code, again.content) == (202, first.content)
    assert submit("da-1", b"other audio").status_code == 422
    assert submit("da-2").json()["request_id"] != first.json()["request_id"]
    request_id = first.json()["request_id"]
    assert submit(None, request_id=request_id).status_code == 409, "a request_id reused without the key"
    assert submit("da-3", request_id=request_id).status_code == 409, "nor under another key"
    named = submit("da-1", request_id=request_id)  # naming the request_id the key made up: the same request
    assert (named.status_code, named.content) == (202, first.content)
    assert len(jobs.store.table) == 2


@pytest.mark.unit
def test_every_create_operation_documents_the_header():
    from diarist.api.openapi import document

    paths = document(edge.SURFACES)["paths"]
    documented = {(route.path, method) for route in idempotency.create_routes(edge.SURFACES) for method in route.methods}
    assert documented == {("/v1/jobs", "POST"), ("/trd/v3/transcribe", "POST"), ("/trd/v3/job/create", "POST"),
                          ("/languageid/v1/jobs", "POST"), ("/speechtotext/v1/jobs", "POST"), ("/captions", "POST"),
                          ("/audio/generic/api/v2/async/diarize", "POST"), ("/audio/generic/api/v1/async/diarize", "POST"),
                          ("/audio/generic/api/v1/async/asr", "POST")}
    for path, _ in documented:
        assert "422" in paths[path]["post"]["responses"], path


# -- through the real service (system) -------------------------------------------------------------

def upload(client: httpx.Client, path, key: str | None, options: dict | None = None) -> httpx.Response:
    with path.open("rb") as media:
        return client.post("/v1/jobs", headers={KEY_HEADER: key} if key else {},
                           files={"media": (path.name, media, "audio/wav")},
                           data={"options": json.dumps(options)} if options else None)


@pytest.fixture(scope="module")
def two_keys(tmp_path_factory, kafka):
    yield from running_service(tmp_path_factory, kafka, "idem", DIARIST_API_KEYS=f"{KEY},other-key")


@pytest.mark.system
def test_the_same_key_twice_gives_the_same_job_and_answer(two_keys, speech):
    with two_keys.client() as client:
        first = upload(client, speech[0], "order-1", {"tag": "idem-native"})
        assert first.status_code == 201, first.text
        again = upload(client, speech[0], "order-1", {"tag": "idem-native"})
        assert (again.status_code, again.content, again.headers["location"]) == (201, first.content,
                                                                                 first.headers["location"])
        listed = client.get("/v1/jobs", params={"tag": "idem-native"}).json()["jobs"]
        assert [job["id"] for job in listed] == [first.json()["id"]]
        changed = upload(client, speech[0], "order-1", {"tag": "idem-native", "language": "en"})
        assert changed.status_code == 422 and changed.json()["detail"] == idempotency.MISMATCH
        assert len(client.get("/v1/jobs", params={"tag": "idem-native"}).json()["jobs"]) == 1


@pytest.mark.system
def test_another_api_key_with_the_same_idempotency_key_makes_its_own_job(two_keys, speech):
    with two_keys.client() as mine, two_keys.client("other-key") as theirs:
        a = upload(mine, speech[0], "shared-key", {"tag": "idem-keys"})
        b = upload(theirs, speech[0], "shared-key", {"tag": "idem-keys"})
        assert a.status_code == b.status_code == 201
        assert a.json()["id"] != b.json()["id"]
        assert upload(theirs, speech[0], "shared-key", {"tag": "idem-keys"}).json()["id"] == b.json()["id"]


@pytest.mark.system
def test_a_facade_answers_a_repeat_with_its_first_answer(two_keys, speech):
    """Rev AI's speech-to-text, as its SDK sends a multipart submission."""
    def submit(key: str, metadata: str) -> httpx.Response:
        with speech[0].open("rb") as media, two_keys.client() as client:
            return client.post("/speechtotext/v1/jobs", headers={KEY_HEADER: key},
                               files={"media": (speech[0].name, media, "audio/wav")},
                               data={"options": json.dumps({"metadata": metadata, "language": "en"})})

    first = submit("rev-1", "first")
    assert first.status_code == 200 and first.json()["status"] == "in_progress", first.text
    with two_keys.client() as client:
        wait_for_job(client, first.json()["id"], lambda job: job["status"] == "COMPLETED")
    again = submit("rev-1", "first")
    assert (again.status_code, again.content) == (200, first.content), "in_progress, as the first answer was"
    assert submit("rev-1", "second").status_code == 422


@pytest.mark.system
def test_a_synchronous_cpqd_transcription_is_repeated_from_its_kept_job(two_keys, speech):
    def transcribe() -> httpx.Response:
        with speech[0].open("rb") as media, two_keys.client() as client:
            return client.post("/trd/v3/transcribe", headers={KEY_HEADER: "trd-1"}, params={"tag": "idem-trd"},
                               files={"upload_file": (speech[0].name, media, "audio/wav")}, timeout=300)

    first = transcribe()
    assert first.status_code == 200 and first.json()["job"]["status"] == "COMPLETED", first.text
    again = transcribe()
    assert (again.status_code, again.content) == (200, first.content)
    with two_keys.client() as client:
        job = client.get(f"/v1/jobs/{first.json()['job']['id']}").json()
    assert job["status"] == "COMPLETED" and job["options"]["delete_after_seconds"] == 24 * 3600


@pytest.mark.system
def test_the_key_survives_a_restart_of_the_jobs_worker(fresh_service, speech):
    with fresh_service.client() as client:
        first = upload(client, speech[0], "restart-1", {"tag": "idem-restart"})
        assert first.status_code == 201, first.text
    fresh_service.stop("worker")
    fresh_service.start("worker")
    fresh_service.wait_healthy()
    with fresh_service.client() as client:
        again = upload(client, speech[0], "restart-1", {"tag": "idem-restart"})
        assert (again.status_code, again.content) == (201, first.content)
        assert upload(client, speech[0], "restart-1", {"tag": "other"}).status_code == 422
        assert len(client.get("/v1/jobs", params={"tag": "idem-restart"}).json()["jobs"]) == 1
