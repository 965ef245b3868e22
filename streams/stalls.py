"""Partitions that a Faust consumer was given but stopped fetching: found, and fetched again.

After a rebalance during a broker outage, faust-streaming now and then leaves a partition it was
assigned without fetching it (faust-streaming #629 describes the like; seen here once, when a
broker and an inference worker were lost together: four jobs queued on one partition waited for
ever while the worker that owned it sat idle). So an idle worker looks at its partitions: one
with events past the consumer's position whose position has not moved for STALL_SECONDS is
stalled, and the consumer is sought back to its committed offsets, which makes it fetch again.
Events already handled may come again; the handlers are idempotent (a job that is over is left
as it is).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from faust.types import TP, ConsumerT

log = logging.getLogger(__name__)
STALL_SECONDS = 30.0
POSITION_TIMEOUT = 10.0  # a position the consumer cannot tell in this time counts as standing still


class StallWatch:
    def __init__(self, consumer: ConsumerT, topic: str, busy: Callable[[], bool]) -> None:
        self.consumer, self.topic, self.busy = consumer, topic, busy
        self._standing: dict[TP, tuple[int | None, float]] = {}  # position, and since when

    async def check(self) -> list[TP]:
        """The stalled partitions of `topic`, after making the consumer fetch them again; none
        while `busy()`: a job holds the stream then, and positions rightly stand still."""
        if self.busy():
            self._standing.clear()
            return []
        partitions = [tp for tp in self.consumer.assignment() if tp.topic == self.topic]
        ends = await self.consumer.highwaters(*partitions)
        now = time.monotonic()
        stalled = []
        for tp in partitions:
            position = await self._position(tp)
            if position is not None and position >= (ends.get(tp) or 0):
                self._standing.pop(tp, None)  # read to the end
                continue
            last, since = self._standing.get(tp, (-1, now))
            if last != position:
                self._standing[tp] = (position, now)
            elif now - since >= STALL_SECONDS:
                stalled.append(tp)
        if stalled:
            log.warning("partitions %s have events past the consumer's position %s, unfetched for %.0f s: "
                        "seeking the consumer to its committed offsets", sorted(tp.partition for tp in stalled),
                        {tp.partition: self._standing[tp][0] for tp in stalled}, STALL_SECONDS)
            self.consumer.resume_partitions(partitions)
            await self.consumer.perform_seek()
            self._standing.clear()
        return stalled

    async def _position(self, tp: TP) -> int | None:
        try:
            return await asyncio.wait_for(self.consumer.position(tp), POSITION_TIMEOUT)
        except TimeoutError:
            return None
