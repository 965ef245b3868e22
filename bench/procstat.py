"""What the benchmarks read from /proc: CPU seconds (their own and the machine's) and memory.

Every benchmark prints the share of the CPU that other processes took while it measured,
because on a small machine a concurrent test run skews timings by 2-5x.
"""
from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int | str) -> list[str]:
    """/proc/<pid>/stat from field 3 (state) on; the command name before it may hold spaces."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def children(pid: int) -> list[int]:
    """Children started from any thread (task/<pid>/children would list the main thread's only)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat_fields(stat.parent.name)[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return sorted(found)


def tree_cpu() -> float:
    """CPU seconds of this process and all its descendants, living or reaped, so far."""
    total, todo = 0.0, [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            total += sum(int(x) for x in stat_fields(pid)[11:15]) / TICK  # utime stime cutime cstime
        except (OSError, ValueError):
            continue
        todo += children(pid)
    return total


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / TICK


def cpu_mark() -> tuple[float, float]:
    """Where the machine's and this process tree's CPU seconds stand, to measure from."""
    return machine_cpu(), tree_cpu()


def foreign_cpu(since: tuple[float, float]) -> float:
    """CPU seconds that processes outside this tree used since the mark."""
    return max(0.0, machine_cpu() - since[0] - (tree_cpu() - since[1]))


def proc_kib(key: str, pid: int | str = "self") -> int | None:
    """A memory line of /proc/<pid>/status (VmHWM, VmRSS, RssAnon, RssFile) in KiB; None if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None
