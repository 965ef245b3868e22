"""The blob stores: one contract, run on the local directory (unit) and on a real S3 server
(SeaweedFS's `weed mini`, system); choosing a store from DIARIST_BLOB_URL; the job lifecycle
with S3 blobs through the real service."""
from __future__ import annotations

import asyncio
import hashlib
import http.server
import os
import threading
import uuid
from collections.abc import AsyncIterator
from functools import partial

import pytest

from diarist.schemas import codec
from diarist.streams import blobs
from diarist.streams.blobs import BlobMissing, BlobReader, LocalBlobStore, S3BlobStore, TooLarge, check_key, open_store
from diarist.streams.inference.media import probe
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.index import JobIndex
from diarist.streams.jobs.service import JobService
from diarist.streams.jobs.store import JobStore, job_id_for_request
from diarist.streams.urls import Allowlist

from .conftest import running_service
from .kafka_tools import produce
from .service import submit, until_status, wait_for_job

MiB = 1024 * 1024


async def chunks_of(data: bytes, size: int = MiB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.fixture(params=[pytest.param("local", marks=pytest.mark.unit),
                        pytest.param("s3", marks=pytest.mark.system)])
def store(request, tmp_path):
    """A store of each kind."""
    return LocalBlobStore(tmp_path / "blobs") if request.param == "local" else request.getfixturevalue("s3_store")


@pytest.fixture
async def s3_store(seaweedfs, monkeypatch):
    """An S3 store under a prefix of the test's own in the session's bucket."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    s3 = S3BlobStore(seaweedfs.bucket, f"t-{uuid.uuid4().hex[:8]}", endpoint_url=seaweedfs.endpoint_url)
    s3.server = seaweedfs  # for the tests that look into the bucket
    yield s3
    await s3.close()


def keys_in(store) -> list[str]:
    """Every object the store holds, as keys of the store."""
    if isinstance(store, LocalBlobStore):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    return sorted(key.removeprefix(store.prefix + "/") for key in store.server.keys(store.prefix + "/"))


async def test_a_stream_larger_than_a_part_is_stored_whole_with_its_md5(store):
    data = os.urandom(2 * blobs.PART_SIZE + 12345)
    md5, size = await store.write_stream("media/big", chunks_of(data, 1000 * 1000), max_bytes=len(data))
    assert (md5, size) == (hashlib.md5(data).hexdigest(), len(data))
    assert await store.size("media/big") == len(data)
    assert await store.get("media/big") == data
    if isinstance(store, S3BlobStore):  # it went up as a multipart upload of three parts
        head = store.server.client().head_object(Bucket=store.bucket, Key=f"{store.prefix}/media/big")
        assert head["ETag"].strip('"').endswith("-3")


async def test_reads_are_ranged(store):
    data = bytes(range(256)) * 64  # 16 KiB
    assert await store.put("media/m", data) == (hashlib.md5(data).hexdigest(), len(data))
    assert await store.read_range("media/m", 100, 300) == data[100:300]
    assert await store.read_range("media/m", len(data) - 10, len(data) + 100) == data[-10:]
    assert await store.read_range("media/m", len(data), len(data) + 5) == b""
    assert await store.read_range("media/m", 50, 50) == b""
    assert b"".join([chunk async for chunk in store.stream("media/m")]) == data
    assert b"".join([chunk async for chunk in store.stream("media/m", 1000, 5000)]) == data[1000:5000]
    assert b"".join([chunk async for chunk in store.stream("media/m", 16000)]) == data[16000:]


async def test_delete_takes_the_object_or_everything_under_a_prefix(store):
    for key in ("results/j/attempt-1.json", "results/j/attempt-2.json", "results/jx/attempt-1.json", "media/j"):
        await store.put(key, key.encode())
    await store.remove("results/j")
    assert keys_in(store) == ["media/j", "results/jx/attempt-1.json"]
    await store.remove("media/j")
    await store.remove("media/never-there")
    assert keys_in(store) == ["results/jx/attempt-1.json"]


async def test_a_missing_object_is_blob_missing(store, tmp_path):
    with pytest.raises(BlobMissing):
        await store.get("media/none")
    with pytest.raises(BlobMissing):
        await store.size("media/none")
    with pytest.raises(BlobMissing):
        await store.read_range("media/none", 0, 10)
    with pytest.raises(BlobMissing):
        [chunk async for chunk in store.stream("media/none")]
    with pytest.raises(BlobMissing):
        await store.open_reader("media/none")
    with pytest.raises(BlobMissing):
        async with store.local_copy("media/none", tmp_path / "scratch"):
            pass
    assert not list((tmp_path / "scratch").glob("*")) if (tmp_path / "scratch").exists() else True


async def test_past_the_limit_the_upload_is_aborted_and_leaves_nothing(store):
    data = os.urandom(3 * blobs.PART_SIZE)
    with pytest.raises(TooLarge):
        await store.write_stream("media/too-big", chunks_of(data), max_bytes=2 * blobs.PART_SIZE + 1)
    assert keys_in(store) == []
    if isinstance(store, S3BlobStore):  # two parts had gone up: the multipart upload was aborted
        uploads = store.server.client().list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)
        assert not uploads.get("Uploads")


async def test_a_sender_that_fails_midway_leaves_nothing(store):
    async def failing() -> AsyncIterator[bytes]:
        yield os.urandom(blobs.PART_SIZE + 1)
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await store.write_stream("media/broken", failing())
    assert keys_in(store) == []


async def test_a_local_copy_is_there_for_the_context_only(store, tmp_path, speech):
    data = speech[0].read_bytes()
    await store.put("media/speech", data)
    scratch = tmp_path / "scratch"
    async with store.local_copy("media/speech", scratch) as path:
        assert path.read_bytes() == data
    if isinstance(store, S3BlobStore):
        assert not path.exists() and list(scratch.iterdir()) == []
    else:
        assert path == store.path("media/speech")  # the store's own file, not a copy


async def test_media_is_probed_through_a_reader(store, speech):
    await store.put("media/speech", speech[0].read_bytes())
    reader = await store.open_reader("media/speech")
    with reader:
        facts = await asyncio.to_thread(probe, reader)
    assert facts == probe(speech[0])
    if isinstance(store, S3BlobStore):
        assert reader.requests <= 2  # a header's worth of ranged reads, not the file


async def test_a_reader_is_not_read_on_the_event_loop(store):
    if isinstance(store, LocalBlobStore):
        pytest.skip("a local file reads anywhere")
    await store.put("media/m", b"abc")
    reader = await store.open_reader("media/m")
    with pytest.raises(RuntimeError, match="another thread"):
        reader.read()


@pytest.mark.unit
def test_a_reader_reads_ahead_and_seeks():
    data = os.urandom(10_000)
    calls = []

    def fetch(start: int, end: int) -> bytes:
        calls.append((start, end))
        return data[start:end]

    reader = BlobReader(fetch, len(data), read_ahead=4096)
    assert reader.read(10) == data[:10] and reader.read(100) == data[10:110]
    assert calls == [(0, 4096)]
    reader.seek(-50, os.SEEK_END)
    assert reader.read() == data[-50:]
    reader.seek(5000)
    assert reader.read(6000) == data[5000:]
    assert reader.read(1) == b""


@pytest.mark.unit
@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a//b", "a/./b", "a/..", "", "a\\b"])
def test_keys_stay_inside_the_store(key, tmp_path):
    with pytest.raises(ValueError, match="leaves the store"):
        check_key(key)
    with pytest.raises(ValueError):
        LocalBlobStore(tmp_path).path(key)


@pytest.mark.unit
def test_the_blob_url_chooses_the_store(tmp_path):
    local = open_store("", tmp_path / "default")
    assert isinstance(local, LocalBlobStore) and local.root == tmp_path / "default"
    other = open_store(f"file://{tmp_path}/other", tmp_path / "default")
    assert isinstance(other, LocalBlobStore) and other.root == tmp_path / "other"
    s3 = open_store("s3://media-bucket/diarist/prod/", tmp_path, endpoint_url="http://127.0.0.1:9000")
    assert isinstance(s3, S3BlobStore)
    assert (s3.bucket, s3.prefix, s3.url, s3.addressing_style) == (
        "media-bucket", "diarist/prod", "s3://media-bucket/diarist/prod", "path")
    assert s3._key("media/j") == "diarist/prod/media/j"
    bare = open_store("s3://b", tmp_path)
    assert isinstance(bare, S3BlobStore) and bare._key("media/j") == "media/j" and bare.addressing_style == "auto"
    for bad in ("http://host/x", "s3:///nobucket", "file://host/x", "s3://b/p?x=1"):
        with pytest.raises(ValueError, match="DIARIST_BLOB_URL"):
            open_store(bad, tmp_path)


# -- S3 under the job service and the real service ---------------------------------------------

@pytest.fixture
def media_server(tmp_path):
    (tmp_path / "served").mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp_path / "served", f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _Publish:
    def __init__(self) -> None:
        self.store: JobStore | None = None

    async def __call__(self, name: str, event: lc.Event) -> None:
        assert self.store is not None
        await self.store.fold(*codec().decode(codec().encode(name, event)))


@pytest.mark.system
async def test_a_media_url_streams_into_a_multipart_upload_and_delete_erases_it(s3_store, media_server, tmp_path):
    store = s3_store
    served, url = media_server
    data = os.urandom(blobs.PART_SIZE + 3 * MiB)
    (served / "long.wav").write_bytes(data)
    publish = _Publish()
    publish.store = JobStore({}, JobIndex(tmp_path / "index"), store)
    jobs = JobService(publish.store, publish, store, max_media_bytes=64 * MiB, media_url_timeout=10)
    jobs.url_allow = Allowlist.from_env("127.0.0.0/8")  # the media server is on loopback
    media = await jobs.fetch_media(f"{url}/long.wav")
    assert (media.ref["md5"], media.ref["size"]) == (hashlib.md5(data).hexdigest(), len(data))
    assert await store.get(media.ref["key"]) == data
    job = await jobs.create(media, {"tag": None})
    await store.put(f"results/{job['id']}/attempt-1.json", b"{}")
    await jobs.stop(job["id"])
    assert (await jobs.delete(job["id"]))["status"] == lc.DELETED
    assert keys_in(store) == []


@pytest.fixture(scope="module")
def s3_service(tmp_path_factory, kafka, seaweedfs):
    prefix = f"svc-{uuid.uuid4().hex[:8]}"
    env = {**seaweedfs.env, "DIARIST_BLOB_URL": f"s3://{seaweedfs.bucket}/{prefix}"}
    for service in running_service(tmp_path_factory, kafka, "s3", **env):
        service.prefix = prefix
        yield service


@pytest.mark.system
def test_a_job_runs_with_its_media_and_result_in_s3(s3_service, seaweedfs, speech):
    service, prefix = s3_service, s3_service.prefix
    with service.client() as client:
        created = submit(client, speech[0])
        job = wait_for_job(client, created["id"], until_status("COMPLETED", "FAILED", "STOPPED"))
        assert job["status"] == "COMPLETED", job["failure_reason"]
        result = client.get(f"/v1/jobs/{job['id']}/result")
        assert result.status_code == 200 and "fox" in " ".join(s["text"] for s in result.json()["segments"]).lower()
        keys = seaweedfs.keys(f"{prefix}/")
        assert f"{prefix}/media/{job['id']}" in keys
        assert [k for k in keys if k.startswith(f"{prefix}/results/{job['id']}/")]
        local = service.data_dir / "blobs"
        assert not local.exists() or not [p for p in local.rglob("*") if p.is_file()]  # nothing on local disk
        deleted = client.delete(f"/v1/jobs/{job['id']}")
        assert deleted.status_code == 200 and deleted.json()["status"] == "DELETED"
        assert not [k for k in seaweedfs.keys(f"{prefix}/") if job["id"] in k]
        assert client.get(f"/v1/jobs/{job['id']}/result").status_code == 410


@pytest.mark.system
def test_media_missing_from_s3_fails_the_job_and_says_so(s3_service, kafka):
    request_id = uuid.uuid4().hex
    spec = {"filename": "gone.wav",
            "media": {"key": f"incoming/{request_id}.wav", "md5": "0" * 32, "size": 10, "content_type": "audio/wav"},
            "options": {"tag": None, "language": "en", "model": None, "callback_urls": [], "metadata": None}}
    produce(kafka.bootstrap_servers, s3_service.env["DIARIST_NAMESPACE"] + ".media", request_id,
            "diarist.MediaSubmitted", {"request_id": request_id, "occurred_at": lc.now(), "spec": spec})
    job_id = job_id_for_request(request_id)
    with s3_service.client() as client:
        job = wait_for_job(client, job_id, lambda j: j.get("status") in ("COMPLETED", "FAILED"), timeout=60)
    assert job["status"] == "FAILED" and job["failure_reason"] == "the media is missing from the blob store"
