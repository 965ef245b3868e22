"""StallWatch (streams/stalls.py) over a fake consumer: a partition with events past a position
that stands still is fetched again; one that moves, one read to its end, and a busy worker are
left alone. (tests/test_cluster.py runs it inside real inference workers.)"""
from __future__ import annotations

import pytest
from faust.types import TP

from diarist.streams import stalls

pytestmark = pytest.mark.unit
EVENTS = "ns.job-events"


class Consumer:
    def __init__(self, positions: dict[int, int | None], ends: dict[int, int]) -> None:
        self.positions, self.ends = positions, ends
        self.resumed: list[set[TP]] = []
        self.seeks = 0

    def assignment(self) -> set[TP]:
        return {TP(EVENTS, p) for p in self.positions} | {TP("other", 0)}

    async def highwaters(self, *partitions: TP) -> dict[TP, int]:
        return {tp: self.ends[tp.partition] for tp in partitions}

    async def position(self, tp: TP) -> int | None:
        if self.positions[tp.partition] is None:  # the consumer cannot tell
            raise TimeoutError
        return self.positions[tp.partition]

    def resume_partitions(self, tps) -> None:
        self.resumed.append(set(tps))

    async def perform_seek(self) -> None:
        self.seeks += 1


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(stalls.time, "monotonic", lambda: now[0])
    return now


async def test_a_partition_with_unread_events_that_stands_still_is_fetched_again(clock):
    consumer = Consumer({0: 5, 1: 3, 2: 7, 3: None}, {0: 5, 1: 9, 2: 9, 3: 4})
    watch = stalls.StallWatch(consumer, EVENTS, busy=lambda: False)
    assert await watch.check() == []  # first look: nothing has stood still yet
    clock[0] += stalls.STALL_SECONDS / 2
    consumer.positions[2] = 8  # partition 2 moves: it is being read
    assert await watch.check() == []
    clock[0] += stalls.STALL_SECONDS / 2
    stalled = await watch.check()
    # 0 is read to its end, 2 moved; 1 stood at 3 of 9 and 3's position could not be told, for 30 s
    assert sorted(tp.partition for tp in stalled) == [1, 3]
    assert consumer.seeks == 1 and consumer.resumed == [{TP(EVENTS, p) for p in range(4)}]
    assert await watch.check() == []  # the clock starts again after a seek


async def test_a_busy_worker_is_left_alone_however_long_a_partition_waits(clock):
    consumer = Consumer({0: 1}, {0: 9})
    busy = [True]
    watch = stalls.StallWatch(consumer, EVENTS, busy=lambda: busy[0])
    for _ in range(3):
        assert await watch.check() == []
        clock[0] += stalls.STALL_SECONDS
    busy[0] = False
    assert await watch.check() == []  # idle now: its wait counts from here
    clock[0] += stalls.STALL_SECONDS
    assert [tp.partition for tp in await watch.check()] == [0] and consumer.seeks == 1
