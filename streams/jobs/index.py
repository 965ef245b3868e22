"""A secondary index of jobs for listing: newest first, filtered by status, tag, task or filename.

Listing must stay fast at millions of jobs, so it never scans the jobs table: it walks one
sorted key range in RocksDB and stops after a page. Keys sort newest first because they hold
the inverted creation time. The index is derived state: the jobs agent updates it on every
event it folds (idempotently), and it is rebuilt from the jobs table when it is missing.

The same goes for retention: an ended job with delete_after_seconds has an expiry key, sorted
by the time it is due for deletion, so finding the due jobs is one range walk too.

And for the number of jobs in each status, per API they came through (/metrics): a count key per
(status, api), kept as entries change, so reading them walks a few keys whatever the jobs.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rocksdict import Rdict

from diarist.streams.jobs.errors import InvalidCursor
from diarist.streams.jobs.types import Job, Status, Task

SEP = "\x00"
_INVERT = 10**13
EXPIRY = "e"  # key prefix of the jobs due for deletion, soonest first
ENDED = frozenset({Status.COMPLETED, Status.FAILED, Status.STOPPED})
COUNT = "n"  # key prefix of the counts: n<SEP><status><SEP><api> -> how many jobs
COUNTS_KEPT = f"m{SEP}counts"  # set once the counts were made from the entries (an index made before them)


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _inverted(at: datetime) -> str:
    return f"{_INVERT - _millis(at):013d}"


def _expiry(job: Job) -> str | None:
    """When an ended job with a retention is due for deletion (ms, as its key sorts), else None."""
    retention = job["spec"]["options"].get("delete_after_seconds")
    if retention is None or job["status"] not in ENDED:
        return None
    ended_at = job["history"][-1]["at"]  # the transition that ended it
    return f"{_millis(ended_at) + retention * 1000:013d}"


@dataclass(frozen=True)
class Page:
    ids: list[str]
    next_cursor: str | None


# Filters with keys of their own, the most selective first: a page walks the key range of the
# first filter given and checks the others on each job's entry.
FILTERS = {"tag": "t", "filename": "f", "status": "s", "task": "k"}  # filter -> key prefix


class JobIndex:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = Rdict(str(path))
        if self.db.get(COUNTS_KEPT) is None:
            self._recount()

    def put(self, job: Job) -> None:
        """Indexes the job as it is now, dropping its keys for what it was."""
        options = job["spec"]["options"]
        entry = {"status": job["status"], "tag": options["tag"], "task": options.get("task", Task.TRANSCRIPTION),
                 "filename": job["spec"]["filename"], "inv": _inverted(job["created_at"]),
                 "expires": _expiry(job), "api": options.get("api", "diarist")}
        old = self.db.get(f"j{SEP}{job['id']}")
        old = json.loads(old) if old else None
        if old == entry:
            return
        if old:
            for key in self._keys(job["id"], old):
                self.db.delete(key)
            self._count(old, -1)
        for key in self._keys(job["id"], entry):
            self.db[key] = b""
        self._count(entry, 1)
        self.db[f"j{SEP}{job['id']}"] = json.dumps(entry)

    def reconcile(self, jobs: Iterable[Job]) -> int:
        """Makes the index hold exactly these jobs (this worker's, after a rebalance)."""
        keep = set()
        for job in jobs:
            self.put(job)
            keep.add(job["id"])
        it = self.db.iter()
        it.seek(f"j{SEP}")
        gone = []
        while it.valid() and it.key().startswith(f"j{SEP}"):
            job_id = it.key()[2:]
            if job_id not in keep:
                gone.append((job_id, json.loads(it.value())))
            it.next()
        for job_id, entry in gone:
            for key in [*self._keys(job_id, entry), f"j{SEP}{job_id}"]:
                self.db.delete(key)
            self._count(entry, -1)
        return len(keep)

    def counts(self) -> dict[tuple[str, str], int]:
        """(status, api) -> how many of the indexed jobs (this worker's) are in that status."""
        found = {}
        it = self.db.iter()
        it.seek(f"{COUNT}{SEP}")
        while it.valid() and it.key().startswith(f"{COUNT}{SEP}"):
            _, status, api = it.key().split(SEP)
            if it.value():
                found[status, api] = int(it.value())
            it.next()
        return found

    def _count(self, entry: dict, change: int) -> None:
        key = f"{COUNT}{SEP}{entry['status']}{SEP}{entry.get('api') or 'diarist'}"
        n = int(self.db.get(key) or 0) + change
        if n > 0:
            self.db[key] = n
        else:
            self.db.delete(key)

    def _recount(self) -> None:
        """Makes the counts from the entries (once: for an index made before counts were kept)."""
        stale = []
        it = self.db.iter()
        it.seek(f"{COUNT}{SEP}")
        while it.valid() and it.key().startswith(f"{COUNT}{SEP}"):
            stale.append(it.key())
            it.next()
        for key in stale:
            self.db.delete(key)
        it = self.db.iter()
        it.seek(f"j{SEP}")
        while it.valid() and it.key().startswith(f"j{SEP}"):
            self._count(json.loads(it.value()), 1)
            it.next()
        self.db[COUNTS_KEPT] = b"1"

    def page(self, *, created_after: datetime | None = None, created_before: datetime | None = None,
             cursor: str | None = None, limit: int = 50, **filters: str | None) -> Page:
        """Job ids newest first, created_after inclusive, created_before exclusive."""
        prefix, checks = self._plan(filters)
        start = prefix
        if created_before:
            start = prefix + f"{int(_inverted(created_before)) + 1:013d}"
        after_cursor = _decode_cursor(cursor) if cursor else None
        if after_cursor and prefix + after_cursor > start:
            start = prefix + after_cursor
        stop_inv = _inverted(created_after) if created_after else None

        ids: list[str] = []
        for inv, job_id in self._walk(prefix, start, checks):
            if stop_inv and inv > stop_inv:
                break
            if f"{inv}{SEP}{job_id}" == after_cursor:
                continue
            if len(ids) == limit:
                last = ids[-1]
                return Page(ids, _encode_cursor(f"{self._inv_of(last)}{SEP}{last}"))
            ids.append(job_id)
        return Page(ids, None)

    def due(self, until: datetime, limit: int = 500) -> list[str]:
        """Ids of the jobs due for deletion at `until`, soonest first."""
        until_ms = f"{_millis(until):013d}"
        ids = []
        for expires, job_id in self._walk(f"{EXPIRY}{SEP}", f"{EXPIRY}{SEP}", {}):
            if expires > until_ms or len(ids) == limit:
                break
            ids.append(job_id)
        return ids

    def count(self, *, created_after: datetime | None = None, created_before: datetime | None = None,
              **filters: str | None) -> int:
        """How many jobs match: a walk over index keys, never over the jobs themselves."""
        prefix, checks = self._plan(filters)
        start = prefix + (f"{int(_inverted(created_before)) + 1:013d}" if created_before else "")
        stop_inv = _inverted(created_after) if created_after else None
        total = 0
        for inv, _ in self._walk(prefix, start, checks):
            if stop_inv and inv > stop_inv:
                break
            total += 1
        return total

    def _plan(self, filters: dict[str, str | None]) -> tuple[str, dict[str, str]]:
        unknown = set(filters) - set(FILTERS)
        if unknown:
            raise TypeError(f"no index on {', '.join(sorted(unknown))}")
        given = {name: value for name, value in filters.items() if value is not None}
        first = next((name for name in FILTERS if name in given), None)
        if first is None:
            return f"c{SEP}", {}
        return f"{FILTERS[first]}{SEP}{given.pop(first)}{SEP}", given

    def _walk(self, prefix: str, start: str, checks: dict[str, str]):
        """(inverted time, job id) of the keys under prefix from start, that pass the checks."""
        it = self.db.iter()
        it.seek(start)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                return
            inv, job_id = key[len(prefix):].split(SEP)
            it.next()
            if checks:
                entry = json.loads(self.db[f"j{SEP}{job_id}"])
                if any(entry.get(name) != value for name, value in checks.items()):
                    continue
            yield inv, job_id

    def close(self) -> None:
        self.db.close()

    def _inv_of(self, job_id: str) -> str:
        return json.loads(self.db[f"j{SEP}{job_id}"])["inv"]

    @staticmethod
    def _keys(job_id: str, entry: dict) -> list[str]:
        keys = [f"c{SEP}{entry['inv']}{SEP}{job_id}"]
        for name in FILTERS:
            if entry.get(name):
                keys.append(f"{FILTERS[name]}{SEP}{entry[name]}{SEP}{entry['inv']}{SEP}{job_id}")
        if entry.get("expires"):
            keys.append(f"{EXPIRY}{SEP}{entry['expires']}{SEP}{job_id}")
        return keys


def cursor_after(created_at: datetime, job_id: str) -> str:
    """The cursor of the page that follows this job (for pages merged across workers)."""
    return _encode_cursor(f"{_inverted(created_at)}{SEP}{job_id}")


def sort_key(created_at: datetime, job_id: str) -> tuple[str, str]:
    """The index order (newest first, then by id), for merging pages of several workers."""
    return _inverted(created_at), job_id


def _encode_cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:
        raise InvalidCursor("the cursor is not one this API gave out") from None
    inv, sep, job_id = raw.partition(SEP)
    if not sep or not inv.isdigit() or len(inv) != 13:
        raise InvalidCursor("the cursor is not one this API gave out")
    return raw
