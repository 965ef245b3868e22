"""The listing index: newest first, filters, cursors, and keys that follow status changes."""
from datetime import UTC, datetime, timedelta

import pytest

from diarist.streams.jobs.index import COUNT, COUNTS_KEPT, InvalidCursor, JobIndex

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def job(n: int, status: str = "QUEUED", tag: str | None = None, task: str = "TRANSCRIPTION",
        filename: str = "a.wav") -> dict:
    return {"id": f"job{n:03d}", "status": status, "created_at": T0 + timedelta(seconds=n),
            "spec": {"filename": filename, "options": {"tag": tag, "task": task}}}


@pytest.fixture
def index(tmp_path):
    index = JobIndex(tmp_path / "index")
    yield index
    index.close()


def all_pages(index, **filters):
    ids, cursor = [], None
    while True:
        page = index.page(cursor=cursor, limit=3, **filters)
        ids += page.ids
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def test_pages_walk_every_job_newest_first(index):
    for n in range(10):
        index.put(job(n, tag="even" if n % 2 == 0 else None))
    assert all_pages(index) == [f"job{n:03d}" for n in range(9, -1, -1)]
    assert all_pages(index, tag="even") == [f"job{n:03d}" for n in (8, 6, 4, 2, 0)]


def test_time_bounds_are_inclusive_after_and_exclusive_before(index):
    for n in range(10):
        index.put(job(n))
    page = index.page(created_after=T0 + timedelta(seconds=3), created_before=T0 + timedelta(seconds=7), limit=50)
    assert page.ids == ["job006", "job005", "job004", "job003"]


def test_a_status_change_moves_the_job_between_status_lists(index):
    index.put(job(1))
    index.put(job(2))
    index.put(job(1, status="COMPLETED"))
    assert index.page(status="QUEUED", limit=50).ids == ["job002"]
    assert index.page(status="COMPLETED", limit=50).ids == ["job001"]
    index.put(job(1, status="COMPLETED"))  # idempotent
    assert index.page(limit=50).ids == ["job002", "job001"]


def test_status_and_tag_together(index):
    index.put(job(1, "COMPLETED", "a"))
    index.put(job(2, "COMPLETED", "b"))
    index.put(job(3, "FAILED", "a"))
    assert index.page(status="COMPLETED", tag="a", limit=50).ids == ["job001"]


def test_a_forged_cursor_is_refused(index):
    with pytest.raises(InvalidCursor):
        index.page(cursor="bm90IGEgY3Vyc29y", limit=5)


def test_task_and_filename_filter_with_the_others(index):
    index.put(job(1, task="LANGUAGE_IDENTIFICATION", filename="x.wav"))
    index.put(job(2, task="TRANSCRIPTION", filename="x.wav", tag="a"))
    index.put(job(3, task="LANGUAGE_IDENTIFICATION", filename="y.wav", tag="a"))
    assert index.page(task="LANGUAGE_IDENTIFICATION", limit=50).ids == ["job003", "job001"]
    assert index.page(filename="x.wav", limit=50).ids == ["job002", "job001"]
    assert index.page(tag="a", task="TRANSCRIPTION", limit=50).ids == ["job002"]
    assert all_pages(index, task="LANGUAGE_IDENTIFICATION") == ["job003", "job001"]


def test_count_agrees_with_the_pages(index):
    for n in range(12):
        index.put(job(n, status="COMPLETED" if n % 3 else "FAILED", tag="even" if n % 2 == 0 else None))
    for filters in ({}, {"status": "FAILED"}, {"tag": "even"}, {"tag": "even", "status": "COMPLETED"}):
        assert index.count(**filters) == len(all_pages(index, **filters))
    assert index.count(created_after=T0 + timedelta(seconds=4), created_before=T0 + timedelta(seconds=8)) == 4


def test_an_unknown_filter_is_a_programming_error(index):
    with pytest.raises(TypeError):
        index.page(colour="red", limit=5)


def ended(n: int, status: str, delete_after_seconds: int | None, ended_after: int = 10) -> dict:
    """Job n as it ends `ended_after` seconds after its creation, with this retention."""
    record = job(n, status)
    record["spec"]["options"]["delete_after_seconds"] = delete_after_seconds
    record["history"] = [{"event": status.lower(), "at": record["created_at"] + timedelta(seconds=ended_after)}]
    return record


def test_ended_jobs_with_a_retention_are_due_when_it_runs_out(index):
    index.put(ended(1, "COMPLETED", 60))
    index.put(ended(2, "FAILED", 0))
    index.put(ended(3, "STOPPED", 5))
    index.put(ended(4, "COMPLETED", None))
    ended_at = T0 + timedelta(seconds=10)
    assert index.due(ended_at - timedelta(seconds=1)) == []
    assert index.due(ended_at + timedelta(seconds=2)) == ["job002"]
    assert index.due(ended_at + timedelta(seconds=70)) == ["job002", "job003", "job001"]
    assert index.due(ended_at + timedelta(seconds=70), limit=2) == ["job002", "job003"]


def test_a_job_that_moves_on_is_no_longer_due(index):
    index.put(ended(1, "FAILED", 0))
    index.put(ended(2, "COMPLETED", 0))
    later = T0 + timedelta(hours=1)
    index.put({**ended(1, "FAILED", 0), "status": "QUEUED"})  # retried
    index.put({**ended(2, "COMPLETED", 0), "status": "DELETED"})
    assert index.due(later) == []
    # Ending again counts the retention from the new end.
    index.put(ended(1, "COMPLETED", 0, ended_after=3600))
    assert index.due(later) == [] and index.due(later + timedelta(hours=1)) == ["job001"]


def test_counts_by_status_and_api_follow_every_change(tmp_path):
    def made(n: int, status: str = "QUEUED", api: str | None = None) -> dict:
        made = job(n, status)
        if api:
            made["spec"]["options"]["api"] = api
        return made

    index = JobIndex(tmp_path / "index")
    for n in range(5):
        index.put(made(n, api="nyt" if n < 2 else None))
    assert index.counts() == {("QUEUED", "nyt"): 2, ("QUEUED", "diarist"): 3}
    index.put(made(0, "IN_PROGRESS", "nyt"))
    index.put(made(0, "IN_PROGRESS", "nyt"))  # idempotent
    index.put(made(2, "COMPLETED"))
    assert index.counts() == {("QUEUED", "nyt"): 1, ("IN_PROGRESS", "nyt"): 1, ("QUEUED", "diarist"): 2,
                              ("COMPLETED", "diarist"): 1}
    index.reconcile([made(0, "IN_PROGRESS", "nyt"), made(2, "COMPLETED")])  # the others moved away
    assert index.counts() == {("IN_PROGRESS", "nyt"): 1, ("COMPLETED", "diarist"): 1}
    # An index made before counts were kept makes them from its entries when opened.
    index.db.delete(COUNTS_KEPT)
    index.db[f"{COUNT}\x00QUEUED\x00diarist"] = 40
    index.close()
    reopened = JobIndex(tmp_path / "index")
    assert reopened.counts() == {("IN_PROGRESS", "nyt"): 1, ("COMPLETED", "diarist"): 1}
    reopened.close()
