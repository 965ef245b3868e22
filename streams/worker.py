"""The jobs worker: the Faust app that owns job state, and in whose event loop the edge runs.

Agents:
- fold-events: the only writer of the jobs table; folds every lifecycle event.
- admit-media: turns media events from external producers into created events.
"""
from __future__ import annotations

import logging

from diarist.schemas import SchemaError, codec
from diarist.settings import Settings

from . import lifecycle as lc
from .app import faust_app
from .blobs import LocalBlobStore
from .heartbeats import HeartbeatBoard
from .jobindex import JobIndex
from .jobs import JobCommands, JobStore, job_id_for_request
from .topics import topics

log = logging.getLogger(__name__)


class JobsWorker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        names = topics(settings)
        self.app = faust_app(names.jobs_app, settings)
        self.events_topic = self.app.topic(names.events, key_serializer="raw", value_serializer="raw")
        self.media_topic = self.app.topic(names.media, key_serializer="raw", value_serializer="raw")
        self.table = self.app.Table("jobs", partitions=settings.partitions,
                                    key_type=bytes, value_type=bytes)
        self.blobs = LocalBlobStore(settings.blob_dir)
        self.store = JobStore(self.table, JobIndex(settings.data_dir / "index"), self.blobs)
        self.commands = JobCommands(self.store, self.publish)
        self.heartbeats = HeartbeatBoard(settings.bootstrap, names.heartbeats)
        self.app.agent(self.events_topic, name="fold-events")(self._fold_events)
        self.app.agent(self.media_topic, name="admit-media")(self._admit_media)
        self.app.task(self._index_after_recovery)
        self.app.task(self.heartbeats.run)

    @property
    def recovered(self) -> bool:
        return self.app.tables.recovery.completed.is_set()

    async def publish(self, name: str, event: lc.Event) -> None:
        """Sends an event and returns once the broker acknowledged it."""
        sent = await self.events_topic.send(key=event["job_id"].encode(), value=codec().encode(name, event))
        await sent

    async def _fold_events(self, stream) -> None:
        async for value in stream:
            try:
                name, event = codec().decode(value)
            except SchemaError as exc:
                log.warning("skipping an event that is not one: %s", exc)
                continue
            if name in lc.LIFECYCLE_EVENTS:
                self.store.apply(name, event)

    async def _admit_media(self, stream) -> None:
        async for value in stream:
            try:
                name, request = codec().decode(value)
            except SchemaError as exc:
                log.warning("skipping a media event that is not one: %s", exc)
                continue
            if name == "diarist.MediaSubmitted":
                job_id = job_id_for_request(request["request_id"])
                await self.publish(lc.CREATED, lc.make_event(job_id, 1, spec=request["spec"]))

    async def _index_after_recovery(self) -> None:
        await self.app.tables.recovery.completed.wait()
        if self.store.index.is_empty():
            count = self.store.rebuild_index()
            log.info("rebuilt the job index from the jobs table: %d jobs", count)
