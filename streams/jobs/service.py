"""The job service: what every API surface, and the callbacks agent, may do with jobs.

It has no HTTP in it: it returns jobs and raises the errors of streams/jobs/errors.py, and the
edge maps those to problem documents in one table (api/problems.py). Only the jobs agent writes
job state; a change here is an event published and waited for until the fold took it
(read-your-writes). Each jobs worker holds only its partitions of the jobs table, so a call
about a job another worker owns goes to that worker through `Peers` (the edge asks it over
HTTP, api/forwarding.py: interactive queries), and a listing merges every worker's page.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from diarist.streams.blobs import BlobMissing, BlobStore, TooLarge
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.errors import (
    Conflict,
    Gone,
    IdempotencyMismatch,
    JobExists,
    MediaEmpty,
    MediaTooLarge,
    MediaUnavailable,
    NotFound,
    NotYetVisible,
)
from diarist.streams.jobs.index import cursor_after, sort_key
from diarist.streams.jobs.store import JobStore, Publish, media_key, new_job_id, transition
from diarist.streams.jobs.types import Idempotency
from diarist.streams.urls import Allowlist, URLInvalid, URLRefused, describe_failure, guarded_client

TERMINAL = frozenset({lc.COMPLETED, lc.FAILED, lc.STOPPED, lc.DELETED})
COMMANDS = ("stop", "retry", "delete")
CHUNK = 1 << 16
Result = dict[str, Any]


@dataclass(frozen=True)
class Query:
    """Which jobs a listing or a count is about; None matches any."""
    status: str | None = None
    tag: str | None = None
    task: str | None = None
    filename: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class Page:
    jobs: list[lc.Job]
    next_cursor: str | None


@dataclass(frozen=True)
class Once:
    """A create that an Idempotency-Key makes at most once (api/idempotency.py): the job id the
    key names, and the hashes kept in the job's spec (diarist.Idempotency) that tell a repeat of
    the same request from another request."""
    job_id: str
    key: str  # of the API key, the surface and the Idempotency-Key
    fingerprint: str  # of the request

    def record(self) -> Idempotency:
        return {"key": self.key, "fingerprint": self.fingerprint}


@dataclass(frozen=True)
class StoredMedia:
    """Media in the blob store, waiting to become the job `job_id` (or to be discarded)."""
    job_id: str
    filename: str
    ref: dict[str, Any]  # diarist.MediaRef: key, md5, size, content_type


class Peers(Protocol):
    """The other jobs workers of the deployment, and how to ask the one that owns a job."""

    def owner_of(self, job_id: str) -> str | None:
        """The worker that owns the job's partition; None when it is this one."""

    def others(self) -> list[str]: ...

    async def read(self, peer: str, job_id: str) -> lc.Job: ...

    async def result(self, peer: str, job_id: str) -> Result: ...

    async def command(self, peer: str, job_id: str, verb: str) -> lc.Job: ...

    async def page(self, peer: str, query: Query, limit: int, cursor: str | None) -> Page: ...

    async def count(self, peer: str, query: Query) -> int: ...


class NoPeers:
    """A worker alone, or one answering a peer: everything is asked of this worker."""

    def owner_of(self, job_id: str) -> str | None:
        return None

    def others(self) -> list[str]:
        return []

    async def read(self, peer: str, job_id: str) -> lc.Job:
        raise LookupError(f"no peer {peer}")

    async def result(self, peer: str, job_id: str) -> Result:
        raise LookupError(f"no peer {peer}")

    async def command(self, peer: str, job_id: str, verb: str) -> lc.Job:
        raise LookupError(f"no peer {peer}")

    async def page(self, peer: str, query: Query, limit: int, cursor: str | None) -> Page:
        raise LookupError(f"no peer {peer}")

    async def count(self, peer: str, query: Query) -> int:
        raise LookupError(f"no peer {peer}")


class JobService:
    def __init__(self, store: JobStore, publish: Publish, blobs: BlobStore, *, max_media_bytes: int,
                 media_url_timeout: float, url_allow: Allowlist | None = None, default_model: str | None = None,
                 peers: Peers | None = None) -> None:
        self.store = store
        self.publish = publish
        self.blobs = blobs
        self.max_media_bytes = max_media_bytes
        self.media_url_timeout = media_url_timeout
        # What media and callback URLs may point to although not public (DIARIST_URL_ALLOW); by default nothing.
        self.url_allow = url_allow if url_allow is not None else Allowlist()
        self.default_model = default_model  # what runs a job that names no model (the workers' DIARIST_MODEL)
        self.peers: Peers = peers or NoPeers()

    # Taking media in: stored first (claim check), then the job is created with a reference.

    async def store_media(self, chunks: AsyncIterable[bytes], filename: str, content_type: str | None,
                    job_id: str | None = None) -> StoredMedia:
        """Streams media into the blob store for a job to be created."""
        job_id = job_id or new_job_id()
        key = media_key(job_id)
        try:
            md5, size = await self.blobs.write_stream(key, chunks, self.max_media_bytes)
        except TooLarge:
            raise MediaTooLarge(self.max_media_bytes) from None
        if size == 0:
            await self.blobs.remove(key)
            raise MediaEmpty("the media file is empty")
        return StoredMedia(job_id, filename, {"key": key, "md5": md5, "size": size, "content_type": content_type})

    async def store_bytes(self, data: bytes, filename: str, content_type: str | None = None,
                          job_id: str | None = None) -> StoredMedia:
        return await self.store_media(_once(data), filename, content_type, job_id)

    async def fetch_media(self, url: str, headers: dict[str, str] | None = None, job_id: str | None = None,
                    name: str = "media_url") -> StoredMedia:
        """The media at an http(s) URL, streamed into the blob store through the URL guard: every
        connection, each redirect hop included, goes only to an address the guard allows. A failure
        says that the fetch failed, never what answered."""
        try:
            async with guarded_client(self.url_allow, self.media_url_timeout, follow_redirects=True) as client:
                async with client.stream("GET", url, headers=headers) as response:
                    if response.status_code != 200:
                        raise MediaUnavailable(describe_failure(response.status_code, name))
                    filename = PurePosixPath(urlsplit(url).path).name or "media"
                    return await self.store_media(response.aiter_bytes(CHUNK), filename,
                                            response.headers.get("content-type"), job_id)
        except MediaEmpty:
            raise MediaUnavailable(f"{name} gave an empty body") from None
        except (httpx.HTTPError, httpx.InvalidURL, URLInvalid, URLRefused) as exc:
            raise MediaUnavailable(describe_failure(exc, name)) from None

    async def discard(self, media: StoredMedia) -> None:
        """Erases stored media whose job will not be created."""
        await self.blobs.remove(media.ref["key"])

    async def create(self, media: StoredMedia, options: dict[str, Any], once: Once | None = None) -> lc.Job:
        """Queues a job for stored media; the job as created (version 1), once this worker (or its
        owner) folded it.

        With `once`, the job is the one its Idempotency-Key names: made now, or, for a repeat of
        the request that made it, the earlier job (see `earlier`); the repeat's media is erased.
        Two racing repeats both publish a created event; the fold takes the first, and the other
        finds the job made with other media: it erases its own and answers as a repeat."""
        if once is not None and (job := await self.earlier(once, media)) is not None:
            return job
        job_id = once.job_id if once else media.job_id
        spec = {"filename": media.filename, "media": media.ref, "options": options,
                "idempotency": once.record() if once else None}
        event = lc.make_event(job_id, 1, spec=spec)
        try:
            await self.publish(lc.CREATED, event)
        except BaseException:
            await self.discard(media)
            raise
        job = await self._folded(job_id) or lc.queued(lc.CREATED, event)
        if job["spec"]["media"]["key"] != media.ref["key"]:  # another request made this job first
            await self.discard(media)
            return _repeated(job, once)
        return lc.as_created(job)

    async def _folded(self, job_id: str) -> lc.Job | None:
        """The job once the fold took its created event; None when it did not show in time
        (the event is acknowledged by the broker, acks=all: it will be folded)."""
        if (owner := self.peers.owner_of(job_id)) is None:
            try:
                return await self.store.wait_for(job_id, lambda j: j is not None)
            except NotYetVisible:
                return None
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            try:
                return await self.peers.read(owner, job_id)
            except NotFound:
                await asyncio.sleep(0.05)
        return None

    async def earlier(self, once: Once, media: StoredMedia | None = None) -> lc.Job | None:
        """The job that `once`'s Idempotency-Key made, as it was created, when this request is
        the one that made it; None when the key made no job yet. IdempotencyMismatch when the key
        made its job for another request; JobExists when the job id names a job made without this
        key. Media stored for this request is erased once a job is found."""
        try:
            job = await self.read(once.job_id)
        except NotFound:
            return None
        if media is not None and media.ref["key"] != job["spec"]["media"]["key"]:
            await self.discard(media)
        return _repeated(job, once)

    # Reading.

    async def read(self, job_id: str) -> lc.Job:
        if owner := self.peers.owner_of(job_id):
            return await self.peers.read(owner, job_id)
        return self.local_read(job_id)

    def served_by(self, job_id: str) -> str | None:
        """The worker that answers for the job; None when it is this one."""
        return self.peers.owner_of(job_id)

    async def wait(self, job_id: str, until: frozenset[str] = TERMINAL, timeout: float = 60.0,
                   predicate: Callable[[lc.Job], bool] | None = None) -> lc.Job:
        """The job once its status is one of `until` (and `predicate` holds), or as it is when the timeout passes."""
        def done(job: lc.Job | None) -> bool:
            return job is not None and job["status"] in until and (predicate is None or predicate(job))

        deadline = time.monotonic() + timeout
        while True:
            job = await self.read(job_id)
            if done(job) or time.monotonic() >= deadline:
                return job
            if self.peers.owner_of(job_id) is None:
                try:
                    await self.store.wait_for(job_id, done, min(1.0, deadline - time.monotonic()))
                except NotYetVisible:
                    pass
            else:
                await asyncio.sleep(0.2)

    async def page(self, query: Query, *, limit: int, cursor: str | None = None) -> Page:
        """One page of jobs, newest first, merged from every jobs worker, and the next page's cursor."""
        pages = [self.local_page(query, limit, cursor)]
        for peer in self.peers.others():
            pages.append(await self.peers.page(peer, query, limit, cursor))
        return _merged(pages, limit)

    async def count(self, query: Query) -> int:
        """How many jobs match, over every jobs worker."""
        total = self.local_count(query)
        for peer in self.peers.others():
            total += await self.peers.count(peer, query)
        return total

    async def result(self, job_id: str) -> Result:
        """The result document of a COMPLETED job."""
        if owner := self.peers.owner_of(job_id):
            return await self.peers.result(owner, job_id)
        return await self.local_result(job_id)

    # Commands: stop, retry, delete.

    async def stop(self, job_id: str) -> lc.Job:
        return await self.command(job_id, "stop")

    async def retry(self, job_id: str) -> lc.Job:
        return await self.command(job_id, "retry")

    async def delete(self, job_id: str) -> lc.Job:
        return await self.command(job_id, "delete")

    async def command(self, job_id: str, verb: str) -> lc.Job:
        if owner := self.peers.owner_of(job_id):
            return await self.peers.command(owner, job_id, verb)
        return await self.local_command(job_id, verb)

    # What this worker answers itself: for its own jobs, and for its peers.

    def local_read(self, job_id: str) -> lc.Job:
        job = self.store.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    async def local_result(self, job_id: str) -> Result:
        job = self.local_read(job_id)
        if job["status"] == lc.DELETED:
            raise Gone("the job was deleted, and its result with it")
        if job["status"] != lc.COMPLETED:
            raise Conflict(f"the job is {job['status']}; its result is there once it is COMPLETED", job["status"])
        ref = job["result"]
        if ref is None:  # a COMPLETED job always has one
            raise Conflict("the job's result is missing", job["status"])
        try:
            result: Result = json.loads(await self.blobs.get(ref["key"]))
        except BlobMissing:
            raise Conflict("the job's result is missing from the blob store", job["status"]) from None
        return result

    def local_page(self, query: Query, limit: int, cursor: str | None) -> Page:
        jobs, next_cursor = self.store.page(limit=limit, cursor=cursor, **asdict(query))
        return Page(jobs, next_cursor)

    def local_count(self, query: Query) -> int:
        return self.store.index.count(**asdict(query))

    async def local_command(self, job_id: str, verb: str) -> lc.Job:
        if verb not in COMMANDS:
            raise ValueError(f"no command {verb!r}")
        job = self.local_read(job_id)
        try:
            if verb == "stop":
                return await transition(self.store, self.publish, job_id, lc.STOPPED_EVENT, reason="stopped on request")
            if verb == "retry":
                return await transition(self.store, self.publish, job_id, lc.RETRIED, spec=job["spec"])
            return await transition(self.store, self.publish, job_id, lc.DELETED_EVENT)
        except Conflict as exc:
            raise Conflict(f"cannot {verb} the job: {exc}", exc.status) from None
        except NotYetVisible:
            raise NotYetVisible(f"the {verb} is recorded but not yet applied; read the job again shortly") from None


def _repeated(job: lc.Job, once: Once | None) -> lc.Job:
    """The job as created, for a repeat of the request that made it (see JobService.earlier)."""
    made = job["spec"].get("idempotency")
    if once is None or made is None or made["key"] != once.key:
        raise JobExists(f"the job {job['id']} was made by another request")
    if made["fingerprint"] != once.fingerprint:
        raise IdempotencyMismatch("the Idempotency-Key was used for a different request")
    return lc.as_created(job)


def cursor_at(job: lc.Job) -> str:
    """The cursor of the page that follows this job (for APIs whose cursor is a job id)."""
    return cursor_after(job["created_at"], job["id"])


def _merged(pages: list[Page], limit: int) -> Page:
    """One page, newest first, out of the pages of every jobs worker, each sorted the same way."""
    jobs = sorted((job for page in pages for job in page.jobs), key=lambda j: sort_key(j["created_at"], j["id"]))
    more = len(jobs) > limit or any(page.next_cursor for page in pages)
    jobs = jobs[:limit]
    return Page(jobs, cursor_at(jobs[-1]) if more and jobs else None)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data

