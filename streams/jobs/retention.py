"""Retention: a job that asked for it (delete_after_seconds) is deleted that long after it ended.

Each jobs worker sweeps its own jobs: its listing index holds only the jobs of its partitions,
with an expiry key for every ended job that has a retention, so the due ones are one range walk
away however many jobs there are. The deletion is the ordinary delete command (media and result
erased), so a job that moved on since (retried, or deleted already) is refused by the state
machine, and its folded change drops the expiry key. The keys live in RocksDB, so a restart
loses nothing: due jobs are deleted at the first sweep after it.
"""
from __future__ import annotations

import logging

from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.errors import Conflict, NotFound, NotYetVisible
from diarist.streams.jobs.index import JobIndex
from diarist.streams.jobs.service import JobService

log = logging.getLogger(__name__)
SWEEP_SECONDS = 1.0


async def delete_due(index: JobIndex, jobs: JobService) -> None:
    """Deletes the jobs whose retention ran out."""
    for job_id in index.due(lc.now()):
        try:
            await jobs.local_command(job_id, "delete")
        except (NotFound, Conflict, NotYetVisible) as exc:
            # The key stays until a fold changes the job, so the next sweep tries again.
            log.info("job %s is due for deletion, but not deleted yet: %s", job_id, exc)
        else:
            log.info("job %s deleted: its retention ran out", job_id)
