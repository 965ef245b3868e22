"""The jobs worker: the Faust app that owns job state, and in whose event loop the edge runs.

Agents:
- fold-events: the only writer of the jobs table; folds every lifecycle event.
- admit-media: turns media events from external producers into created events.
Both, the callbacks consumer and the heartbeat board take each value through this process's
DeadLetters (streams/deadletters.py): poison is dead-lettered, counted for /healthz, and skipped.
Timers:
- delete-expired: deletes its jobs whose retention (delete_after_seconds) ran out.
"""
from __future__ import annotations

import asyncio
import logging

from aiokafka.partitioner import DefaultPartitioner

from diarist.infra.settings import Settings
from diarist.streams import blobs
from diarist.streams.app import dead_letters, faust_app, publish
from diarist.streams.deadletters import Source
from diarist.streams.heartbeats import HeartbeatBoard
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs import retention
from diarist.streams.jobs.index import JobIndex
from diarist.streams.jobs.service import JobService
from diarist.streams.jobs.store import JobStore, job_id_for_request
from diarist.streams.topics import topics

log = logging.getLogger(__name__)
MEDIA_SUBMITTED = "diarist.MediaSubmitted"


class JobsWorker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        names = topics(settings)
        self.app = faust_app(names.jobs_app, settings)
        self.events_topic = self.app.topic(names.events, key_serializer="raw", value_serializer="raw")
        self.media_topic = self.app.topic(names.media, key_serializer="raw", value_serializer="raw")
        self.table = self.app.Table("jobs", partitions=settings.partitions,
                                    key_type=bytes, value_type=bytes)
        self.blobs = blobs.from_settings(settings)
        self.store = JobStore(self.table, JobIndex(settings.data_dir / "index"), self.blobs)
        # Peers are the edge's to give (api/forwarding.py); until then this worker answers alone.
        self.jobs = JobService(self.store, self.publish, self.blobs, max_media_bytes=settings.max_media_bytes,
                               media_url_timeout=settings.media_url_timeout, url_allow=settings.url_allow(),
                               default_model=settings.model)
        self.dead_letters = dead_letters(self.app, names.dead_letters)
        self.heartbeats = HeartbeatBoard(settings.bootstrap, names.heartbeats, self.dead_letters)
        self.app.agent(self.events_topic, name="fold-events")(self._fold_events)
        self.app.agent(self.media_topic, name="admit-media")(self._admit_media)
        self.app.task(self._index_after_each_recovery)
        self.app.task(self.heartbeats.run)
        self.app.on_before_shutdown.connect(self._close_blobs)
        self.app.timer(retention.SWEEP_SECONDS, name="delete-expired")(self._delete_expired)

    @property
    def recovered(self) -> bool:
        return self.app.tables.recovery.completed.is_set()

    async def publish(self, name: str, event: lc.Event) -> None:
        await publish(self.events_topic, name, event)

    async def _fold_events(self, stream) -> None:
        async for event in stream.events():
            await self.dead_letters.handle("fold-events", Source.of(event.message), self.store.fold,
                                           schemas=lc.LIFECYCLE_EVENTS)

    async def _admit_media(self, stream) -> None:
        async for event in stream.events():
            await self.dead_letters.handle("admit-media", Source.of(event.message), self._admit,
                                           schemas=(MEDIA_SUBMITTED,))

    async def _admit(self, name: str, request: dict) -> None:
        # A request for media outside the blob store is poison, not a job (this raises).
        blobs.check_key(request["spec"]["media"]["key"])
        job_id = job_id_for_request(request["request_id"])
        await self.publish(lc.CREATED, lc.make_event(job_id, 1, spec=request["spec"]))

    async def _close_blobs(self, app: object, **kwargs: object) -> None:
        await self.blobs.close()

    async def _delete_expired(self) -> None:
        # Only a settled worker's index holds exactly the jobs it owns.
        if self.recovered and not self.app.rebalancing:
            await retention.delete_due(self.store.index, self.jobs)

    def owner_url(self, job_id: str) -> str | None:
        """The edge of the jobs worker that owns the job's partition; None when it is this one
        (or when no assignment is known yet, and this one is the best guess)."""
        # Kafka's default partitioner, as the producer used for the job's events; Faust's own
        # key_store needs producer metadata for the changelog topic, which it may not have yet.
        partitions = list(range(self.settings.partitions))
        partition = DefaultPartitioner()(job_id.encode(), partitions, partitions)
        changelog = self.table.changelog_topic.get_topic_name()
        for url, assigned in self.app.router.table_metadata(self.table.name).items():
            if partition in assigned.get(changelog, ()):
                url = str(url).rstrip("/")
                return None if url == self.settings.advertised_url else url
        return None

    def peer_urls(self) -> list[str]:
        """The edges of the other jobs workers of this deployment."""
        urls = {str(url).rstrip("/") for url in self.app.router.tables_metadata()}
        return sorted(urls - {self.settings.advertised_url})

    async def _index_after_each_recovery(self) -> None:
        # The index is local and derived: after every rebalance it must hold exactly the
        # jobs of the partitions this worker now owns (a lost disk included).
        await self.app.tables.recovery.completed.wait()
        reconciled_after = None
        while True:
            settled = not self.app.rebalancing and self.app.tables.recovery.completed.is_set()
            if settled and reconciled_after != self.app.rebalancing_count:
                reconciled_after = self.app.rebalancing_count
                count = self.store.reconcile_index()
                log.info("job index reconciled with the jobs table: %d jobs", count)
            await asyncio.sleep(0.5)
