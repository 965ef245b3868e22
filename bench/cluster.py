"""What a cluster on one machine holds: status reads, lifecycles and audio through it.

Starts infra/cluster.py's cluster (3 Kafka brokers, SeaweedFS, 2 jobs workers, inference workers
started when needed) in a temporary directory and prints, never asserts:

1. status GETs per second and their latency at fixed rates, on one jobs worker (pinned to one
   core) by vegeta (pinned to another): a job that worker owns, and one it forwards to the other;
2. lifecycles per second through the control plane: create (a 1 s upload), stop, delete, with no
   inference worker running, creates alternating between the two edges and stops going through the
   other one;
3. audio seconds per second with one inference worker, then two (the same clips, in the same run).

    python bench/cluster.py [--rates 100,200,400] [--duration 10] [--lifecycles 60] [--concurrency 4]
                            [--batch 8] [--clip-seconds 10]

vegeta: `go install github.com/tsenart/vegeta/v12@latest` (found on PATH or in ~/go/bin).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procstat import cpu_mark, foreign_cpu  # noqa: E402
from diarist.infra.cluster import Cluster  # noqa: E402
from tests.audio import long_text, speak  # noqa: E402

KEY = "bench-key"
INFERENCE_THREADS = 1  # each inference worker: one worker uses one core, two use two


def vegeta_path() -> str:
    found = shutil.which("vegeta") or str(Path.home() / "go" / "bin" / "vegeta")
    if not Path(found).is_file():
        sys.exit("vegeta not found: go install github.com/tsenart/vegeta/v12@latest")
    return found


class Phase:
    """Wall time and the CPU that processes outside this benchmark took meanwhile."""

    def __enter__(self) -> Phase:
        self.mark, self.start = cpu_mark(), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self.start
        self.foreign = foreign_cpu(self.mark)

    def foreign_share(self) -> str:
        cores = os.cpu_count() or 1
        return f"{100 * self.foreign / (self.wall * cores):.0f}%"


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)


def create(c: httpx.Client, path: Path, tag: str) -> dict:
    with path.open("rb") as media:
        answer = c.post("/v1/jobs", files={"media": (path.name, media, "audio/wav")},
                        data={"options": json.dumps({"tag": tag})})
    answer.raise_for_status()
    job: dict = answer.json()
    return job


def pin(pid: int, cores: str) -> None:
    subprocess.run(["taskset", "-a", "-cp", cores, str(pid)], check=True, capture_output=True)


def status_gets(console: Console, cluster: Cluster, clip: Path, rates: list[int], duration: int) -> None:
    edge, other = cluster.edges
    cores = sorted(os.sched_getaffinity(0))
    server_core, tool_core = (cores[0], cores[1]) if len(cores) > 1 else (cores[0], cores[0])
    # A stopped job this worker owns, and one the other owns (so the read is forwarded).
    targets: dict[str, str] = {}
    with client(edge.url) as c:
        while len(targets) < 2:
            job = create(c, clip, "bench-status")
            c.post(f"/v1/jobs/{job['id']}/stop").raise_for_status()
            owner = c.get(f"/v1/jobs/{job['id']}").headers["x-diarist-served-by"]
            targets.setdefault("owned" if owner == edge.url else "forwarded", job["id"])
    vegeta = vegeta_path()
    pin(edge.pid or 0, str(server_core))
    table = Table(title=f"status GETs on {edge.name} (pinned to core {server_core}), vegeta on core {tool_core}, "
                        f"{duration} s each")
    for column in ("job", "rate asked /s", "answered /s", "ok", "503 (busy)", "p50 ms", "p99 ms", "max ms",
                   "others' CPU", "settled after s"):
        table.add_column(column, justify="right")
    try:
        for kind in ("owned", "forwarded"):
            job_id = targets[kind]
            target = f"GET {edge.url}/v1/jobs/{job_id}\nAuthorization: Bearer {KEY}\n"
            for rate in rates:
                with Phase() as phase:
                    attack = subprocess.run(
                        ["taskset", "-c", str(tool_core), vegeta, "attack", f"-rate={rate}/1s", f"-duration={duration}s",
                         "-timeout=10s"], input=target.encode(), capture_output=True, check=True)
                    report = json.loads(subprocess.run([vegeta, "report", "-type=json"], input=attack.stdout,
                                                       capture_output=True, check=True).stdout)
                ms = {k: v / 1e6 for k, v in report["latencies"].items()}
                busy = report.get("status_codes", {}).get("503", 0) / max(1, report["requests"])
                table.add_row(kind, str(rate), f"{report['throughput']:.0f}", f"{100 * report['success']:.1f}%",
                              f"{100 * busy:.1f}%",
                              f"{ms['50th']:.1f}", f"{ms['99th']:.1f}", f"{ms['max']:.0f}", phase.foreign_share(),
                              settle(edge.url, targets["owned"]))
    finally:
        pin(edge.pid or 0, ",".join(map(str, cores)))
    console.print(table)


def settle(url: str, job_id: str, timeout: float = 180) -> str:
    """Seconds until the worker answers a read of its own job within 100 ms three times running:
    requests the load tool gave up on may still be queued in the worker, and would slow the next rate."""
    start = time.monotonic()
    fast = 0
    with client(url) as c:
        while fast < 3 and time.monotonic() - start < timeout:
            t = time.perf_counter()
            try:
                c.get(f"/v1/jobs/{job_id}", timeout=30).raise_for_status()
                fast = fast + 1 if time.perf_counter() - t < 0.1 else 0
            except httpx.HTTPError:
                fast = 0
            time.sleep(0.1)
    waited = time.monotonic() - start
    return f"{waited:.0f}" if fast >= 3 else f">{timeout:.0f}"


def lifecycles(console: Console, cluster: Cluster, clip: Path, count: int, concurrency: int) -> None:
    urls = [edge.url for edge in cluster.edges]
    local = threading.local()
    steps: dict[str, list[float]] = {"create": [], "stop": [], "delete": [], "lifecycle": []}

    def timed(step: str, call: Callable[[], httpx.Response]) -> httpx.Response:
        start = time.perf_counter()
        answer = call()
        answer.raise_for_status()
        steps[step].append(time.perf_counter() - start)
        return answer

    def one(n: int) -> None:
        if not hasattr(local, "clients"):
            local.clients = [client(url) for url in urls]
        creator, stopper = local.clients[n % 2], local.clients[(n + 1) % 2]
        start = time.perf_counter()
        with clip.open("rb") as media:
            job = timed("create", lambda: creator.post("/v1/jobs", files={"media": (clip.name, media, "audio/wav")},
                                                       data={"options": '{"tag": "bench-lifecycle"}'})).json()
        timed("stop", lambda: stopper.post(f"/v1/jobs/{job['id']}/stop"))
        timed("delete", lambda: creator.delete(f"/v1/jobs/{job['id']}"))
        steps["lifecycle"].append(time.perf_counter() - start)

    one(-2)  # warm: connections, the first upload
    one(-1)
    for values in steps.values():
        values.clear()
    with Phase() as phase, ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))
    table = Table(title=f"lifecycles (create 1 s upload → stop → delete), {count} of them, {concurrency} at a time, "
                        f"no inference worker")
    for column in ("", "per second", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    table.add_row("lifecycle", f"{count / phase.wall:.1f}", *quantiles(steps["lifecycle"]))
    for step in ("create", "stop", "delete"):
        table.add_row(f"  {step}", "", *quantiles(steps[step]))
    table.caption = f"{phase.wall:.1f} s; others' CPU {phase.foreign_share()}"
    console.print(table)


def quantiles(values: list[float]) -> tuple[str, str]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{1000 * statistics.median(ordered):.0f}", f"{1000 * p99:.0f}"


def audio_batch(cluster: Cluster, clip: Path, batch: int, tag: str) -> tuple[Phase, list[dict]]:
    """Submits `batch` copies of the clip through both edges; returns once all are COMPLETED."""
    clients = [client(edge.url) for edge in cluster.edges]
    try:
        with Phase() as phase:
            ids = [create(clients[n % 2], clip, tag)["id"] for n in range(batch)]
            while True:
                jobs = clients[0].get("/v1/jobs", params={"tag": tag, "limit": batch}).json()["jobs"]
                if sum(j["status"] == "COMPLETED" for j in jobs) == batch:
                    break
                if failed := [j for j in jobs if j["status"] not in ("QUEUED", "IN_PROGRESS", "COMPLETED")]:
                    raise RuntimeError(f"a job did not complete: {failed[0]}")
                time.sleep(0.2)
        assert {j["id"] for j in jobs} == set(ids)
        return phase, jobs
    finally:
        for c in clients:
            c.close()


def audio(console: Console, cluster: Cluster, clip: Path, batch: int) -> None:
    with wave.open(str(clip)) as w:
        seconds = w.getnframes() / w.getframerate()
    rows = []
    for n in (1, 2):
        part = cluster.part(f"inference-{n}")
        part.start()
        cluster.wait_ready(inference_workers=n)
        audio_batch(cluster, clip, 2 * n, f"bench-warm-{n}")  # warm: first runs, and the group settled
        phase, jobs = audio_batch(cluster, clip, batch, f"bench-audio-{n}")
        runs = [(datetime.fromisoformat(j["completed_at"]) - datetime.fromisoformat(j["started_at"])).total_seconds()
                for j in jobs]
        rows.append((n, phase, runs))
    table = Table(title=f"audio through the cluster: {batch} jobs of {seconds:.1f} s (tiny.en, {INFERENCE_THREADS} "
                        f"thread per inference worker), POST of the first to COMPLETED of the last")
    for column in ("inference workers", "wall s", "audio s / s", "per job p50 s", "others' CPU"):
        table.add_column(column, justify="right")
    for n, phase, runs in rows:
        table.add_row(str(n), f"{phase.wall:.1f}", f"{batch * seconds / phase.wall:.2f}",
                      f"{statistics.median(runs):.2f}", phase.foreign_share())
    table.caption = f"two against one: {rows[0][1].wall / rows[1][1].wall:.2f}x"
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,200,400", help="GET rates per second, comma separated")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each GET rate")
    parser.add_argument("--lifecycles", type=int, default=60, help="0: skip the lifecycles")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8, help="jobs in each audio batch; 0: skip the audio")
    parser.add_argument("--clip-seconds", type=float, default=10, help="length of the speech in each job")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 140)
    vegeta_path()
    with tempfile.TemporaryDirectory(prefix="diarist-bench-cluster-") as tmp:
        tmp_dir = Path(tmp)
        short = speak("Hello there.", tmp_dir / "short.wav")
        clip = speak(long_text(args.clip_seconds), tmp_dir / "clip.wav")
        cluster = Cluster(tmp_dir / "cluster", brokers=3, jobs_workers=2, inference_workers=2, model="tiny.en",
                          namespace="bench", api_key=KEY, inference_threads=INFERENCE_THREADS,
                          env={"DIARIST_RATE_LIMIT": "0", "DIARIST_SESSION_TIMEOUT": "6"})
        console.print(f"starting 3 brokers, SeaweedFS and 2 jobs workers in {tmp_dir} ...")
        started = time.monotonic()
        cluster.start(only={"jobs-1", "jobs-2"})
        console.print(f"ready in {time.monotonic() - started:.0f} s; {os.cpu_count()} cores")
        try:
            status_gets(console, cluster, short, [int(r) for r in args.rates.split(",")], args.duration)
            if args.lifecycles:
                lifecycles(console, cluster, short, args.lifecycles, args.concurrency)
            if args.batch:
                audio(console, cluster, clip, args.batch)
        except BaseException:
            for part in cluster.parts:
                console.print(f"--- {part.name} ---\n{part.log_tail(1500)}", markup=False)
            raise
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
