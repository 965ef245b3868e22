"""A secondary index of jobs for listing: newest first, by status or tag, with cursors.

Listing must stay fast at millions of jobs, so it never scans the jobs table: it walks one
sorted key range in RocksDB and stops after a page. Keys sort newest first because they hold
the inverted creation time. The index is derived state: the jobs agent updates it on every
event it folds (idempotently), and it is rebuilt from the jobs table when it is missing.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from collections.abc import Iterable
from pathlib import Path

from rocksdict import Rdict

SEP = "\x00"
_INVERT = 10**13


def _inverted(at: datetime) -> str:
    return f"{_INVERT - int(at.timestamp() * 1000):013d}"


@dataclass(frozen=True)
class Page:
    ids: list[str]
    next_cursor: str | None


class InvalidCursor(ValueError):
    pass


class JobIndex:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = Rdict(str(path))

    def put(self, job: dict) -> None:
        """Indexes the job as it is now, dropping its keys for what it was."""
        entry = {"status": job["status"], "tag": job["spec"]["options"]["tag"],
                 "inv": _inverted(job["created_at"])}
        old = self.db.get(f"j{SEP}{job['id']}")
        old = json.loads(old) if old else None
        if old == entry:
            return
        if old:
            for key in self._keys(job["id"], old):
                self.db.delete(key)
        for key in self._keys(job["id"], entry):
            self.db[key] = b""
        self.db[f"j{SEP}{job['id']}"] = json.dumps(entry)

    def reconcile(self, jobs: Iterable[dict]) -> int:
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
        return len(keep)

    def page(self, *, status: str | None = None, tag: str | None = None,
             created_after: datetime | None = None, created_before: datetime | None = None,
             cursor: str | None = None, limit: int = 50) -> Page:
        """Job ids newest first, created_after inclusive, created_before exclusive."""
        if status:
            prefix = f"s{SEP}{status}{SEP}"
        elif tag:
            prefix = f"t{SEP}{tag}{SEP}"
        else:
            prefix = f"c{SEP}"
        start = prefix
        if created_before:
            start = prefix + f"{int(_inverted(created_before)) + 1:013d}"
        after_cursor = _decode_cursor(cursor) if cursor else None
        if after_cursor and prefix + after_cursor > start:
            start = prefix + after_cursor
        stop_inv = _inverted(created_after) if created_after else None

        ids: list[str] = []
        it = self.db.iter()
        it.seek(start)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            inv, job_id = key[len(prefix):].split(SEP)
            it.next()
            if stop_inv and inv > stop_inv:
                break
            if f"{inv}{SEP}{job_id}" == after_cursor:
                continue
            if status and tag and json.loads(self.db[f"j{SEP}{job_id}"])["tag"] != tag:
                continue
            if len(ids) == limit:
                last = ids[-1]
                return Page(ids, _encode_cursor(f"{self._inv_of(last)}{SEP}{last}"))
            ids.append(job_id)
        return Page(ids, None)

    def close(self) -> None:
        self.db.close()

    def _inv_of(self, job_id: str) -> str:
        return json.loads(self.db[f"j{SEP}{job_id}"])["inv"]

    @staticmethod
    def _keys(job_id: str, entry: dict) -> list[str]:
        keys = [f"c{SEP}{entry['inv']}{SEP}{job_id}", f"s{SEP}{entry['status']}{SEP}{entry['inv']}{SEP}{job_id}"]
        if entry["tag"]:
            keys.append(f"t{SEP}{entry['tag']}{SEP}{entry['inv']}{SEP}{job_id}")
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
