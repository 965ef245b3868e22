"""Collaborators for the unit tier: the job service over an in-memory jobs table, whose
`publish` folds the event at once, as the jobs agent would (no broker, no model)."""
from __future__ import annotations

from pathlib import Path

from diarist.schemas import codec
from diarist.streams.blobs import LocalBlobStore
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.index import JobIndex
from diarist.streams.jobs.service import JobService
from diarist.streams.jobs.store import JobStore
from diarist.streams.urls import Allowlist


class FoldingPublisher:
    """Publishes by folding into the store; every event goes through the Avro codec first, as on the topic."""

    def __init__(self) -> None:
        self.store: JobStore | None = None
        self.published: list[tuple[str, lc.Event]] = []

    async def __call__(self, name: str, event: lc.Event) -> None:
        assert self.store is not None
        decoded_name, decoded = codec().decode(codec().encode(name, event))
        self.published.append((decoded_name, decoded))
        await self.store.fold(decoded_name, decoded)


# As the test services allow (tests/service.py): the tests' own media and callback servers are on loopback.
LOOPBACK = Allowlist.from_env("127.0.0.0/8")


def job_service(root: Path, max_media_bytes: int = 1 << 20, url_allow: Allowlist = LOOPBACK,
                default_model: str | None = None) -> JobService:
    blobs = LocalBlobStore(root / "blobs")
    publish = FoldingPublisher()
    publish.store = JobStore({}, JobIndex(root / "index"), blobs)
    return JobService(publish.store, publish, blobs, max_media_bytes=max_media_bytes, media_url_timeout=5,
                      url_allow=url_allow, default_model=default_model)
