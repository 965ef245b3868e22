"""What diarist costs on top of the faster-whisper call it wraps: time per job and memory.

Starts a real Kafka broker, the jobs worker and an inference worker, then times the same speech
file both ways in one run: the bare call in this process, and end to end through the HTTP API.

    python bench/e2e.py [--model base|tiny.en] [--seconds 60] [--runs 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import ctranslate2
import faster_whisper
import httpx
from faster_whisper import WhisperModel
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faster_whisper.audio import decode_audio as decode  # noqa: E402

from bench.procstat import children, cpu_mark, foreign_cpu, proc_kib  # noqa: E402
from diarist.infra.broker import KafkaBroker  # noqa: E402
from diarist.infra.settings import Settings  # noqa: E402
from diarist.streams.inference.media import SAMPLE_RATE  # noqa: E402
from diarist.streams.inference.weights import model_dir  # noqa: E402
from tests.audio import long_text, speak  # noqa: E402
from tests.service import Service, free_port, submit  # noqa: E402

TERMINAL = ("COMPLETED", "FAILED", "STOPPED")
POLL = 0.05
# Lets the jobs worker finish what follows a completion (tables, changelogs) before the next bare call.
SETTLE = 1.0
PHASES = {  # e2e phase -> (from, to): wall clock of this process or the job's own timestamps
    "upload + create (POST → created_at)": ("post", "created_at"),
    "queue wait (created_at → started_at)": ("created_at", "started_at"),
    "processing (started_at → completed_at)": ("started_at", "completed_at"),
    "  probe + decode + VAD (→ diarized_at)": ("started_at", "diarized_at"),
    "  transcribe (diarized_at → completed_at)": ("diarized_at", "completed_at"),
    "completion seen (completed_at → poll)": ("completed_at", "seen"),
}
JOB_TIMES = ("created_at", "started_at", "diarized_at", "completed_at")


@dataclass
class Samples:
    bare: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in PHASES})
    words: dict[str, int] = field(default_factory=dict)


def bare_run(model: WhisperModel, path: Path) -> tuple[float, int]:
    """What the engine does with the model, timed the same way; returns (seconds, words)."""
    language = None if model.model.is_multilingual else "en"
    start = time.perf_counter()
    audio = decode(path)
    segments, _ = model.transcribe(audio, language=language, beam_size=5, word_timestamps=True,
                                   vad_filter=True, no_speech_threshold=None)
    words = sum(len(s.words or []) for s in segments)  # segments is lazy: consuming it is the work
    return time.perf_counter() - start, words


def e2e_run(client: httpx.Client, path: Path, timeout: float = 900) -> tuple[float, dict[str, float], dict]:
    """POST → COMPLETED seen; returns (seconds, epoch seconds of each moment, job)."""
    posted, start = time.time(), time.perf_counter()
    job = submit(client, path)
    deadline = start + timeout
    while job["status"] not in TERMINAL:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"job {job['id']} still {job['status']} after {timeout} s")
        time.sleep(POLL)
        job = client.get(f"/v1/jobs/{job['id']}").json()
    seconds, seen = time.perf_counter() - start, time.time()
    if job["status"] != "COMPLETED":
        raise RuntimeError(f"job {job['id']} ended {job['status']}: {job['failure_reason']}")
    moments = {"post": posted, "seen": seen}
    # The job's timestamps come from the same machine's clock, so they line up with time.time().
    moments |= {k: datetime.fromisoformat(job[k]).timestamp() for k in JOB_TIMES}
    return seconds, moments, job


def child_label(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "child (gone)"
    if "spawn_main" in cmd:
        return "engine (spawned child)"
    if "resource_tracker" in cmd:
        return "multiprocessing resource tracker"
    return "child: " + cmd[:40]


def memory_rows(service: Service) -> list[tuple[str, int, int | None, int | None]]:
    rows = []
    for role, label in (("worker", "jobs worker + edge"), ("inference", "inference worker")):
        pid = service.processes[role].pid
        rows.append((label, pid, proc_kib("VmHWM", pid), proc_kib("VmRSS", pid)))
        rows += [(f"  └ {child_label(c)}", c, proc_kib("VmHWM", c), proc_kib("VmRSS", c)) for c in children(pid)]
    return rows


def mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:,.0f}"


def report(console: Console, args: argparse.Namespace, threads: int, audio_s: float, s: Samples,
           memory: list[tuple[str, int, int | None, int | None]], bench_base_kib: int | None,
           foreign: tuple[float, float]) -> None:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    console.print(f"machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
                  f"Python {platform.python_version()}, faster-whisper {faster_whisper.__version__}, "
                  f"ctranslate2 {ctranslate2.__version__}")
    console.print(f"model: {args.model} (cpu, int8, cpu_threads={threads}); audio: {audio_s:.1f} s espeak-ng "
                  f"English; {args.runs} timed runs each, alternating, after one warm-up each")
    console.print(f"words transcribed: bare {s.words['bare']}, diarist {s.words['e2e']}")
    share = foreign[0] / (foreign[1] * (os.cpu_count() or 1))
    console.print(f"CPU used by other processes during the timed runs: about {foreign[0]:.1f} s in {foreign[1]:.1f} s "
                  f"({share:.0%} of the machine)" + ("  [bold red]figures are skewed: rerun on a quiet machine"
                                                     if share > 0.05 else ""))

    def rtf(seconds: float) -> str:
        return f"{audio_s / seconds:.2f}×" if seconds > 0 else "-"

    table = Table(title="Seconds per job (RTF = audio seconds / seconds)")
    for name, justify in (("", "left"), ("median", "right"), ("min", "right"), ("RTF median", "right"),
                          ("RTF best", "right")):
        table.add_column(name, justify=justify)

    def row(label: str, values: list[float], with_rtf: bool = True) -> None:
        med, low = statistics.median(values), min(values)
        table.add_row(label, f"{med:.3f}", f"{low:.3f}", rtf(med) if with_rtf else "", rtf(low) if with_rtf else "")

    row("bare faster-whisper (decode + transcribe)", s.bare)
    row("diarist end to end (POST → COMPLETED seen)", s.e2e)
    for name, values in s.phases.items():
        row("  " + name, values, with_rtf=name.startswith("processing"))
    b_med, b_min, e_med, e_min = statistics.median(s.bare), min(s.bare), statistics.median(s.e2e), min(s.e2e)
    table.add_row("end to end / bare", f"{e_med / b_med:.2f}×", f"{e_min / b_min:.2f}×", "", "")
    table.add_row("overhead, end to end − bare (s)", f"{e_med - b_med:+.3f}", f"{e_min - b_min:+.3f}", "", "")
    console.print(table)

    mem = Table(title="Memory (MiB; peak = VmHWM)")
    for name, justify in (("process", "left"), ("pid", "right"), ("peak", "right"), ("now", "right")):
        mem.add_column(name, justify=justify)
    for label, pid, peak, now in memory:
        mem.add_row(label, str(pid), mib(peak), mib(now))
    mem.add_row("bench process, bare call (ru_maxrss)", str(os.getpid()),
                mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), mib(proc_kib("VmRSS", os.getpid())))
    mem.add_row("  of which before the model was loaded (VmRSS)", "", mib(bench_base_kib), "")
    console.print(mem)
    console.print("The bench figure includes its own imports, HTTP client and the decoded audio as well.")


def measure(console: Console, model: WhisperModel, client: httpx.Client, path: Path,
            runs: int) -> tuple[Samples, tuple[float, float]]:
    """The timed runs; also (CPU seconds used by other processes meanwhile, wall seconds)."""
    samples = Samples()
    # First calls load the VAD model, open Kafka consumers, etc.: kept out of the figures.
    console.print("warming up ...")
    bare_run(model, path)
    e2e_run(client, path)
    time.sleep(SETTLE)
    # CPU that the machine spent outside this process tree skews the figures: measure it.
    cpu0, wall0 = cpu_mark(), time.perf_counter()
    for i in range(runs):
        # Alternating the order keeps drift (caches, thermals) from favouring one side.
        for kind in (("bare", "e2e") if i % 2 == 0 else ("e2e", "bare")):
            if kind == "bare":
                seconds, samples.words["bare"] = bare_run(model, path)
                samples.bare.append(seconds)
            else:
                seconds, at, job = e2e_run(client, path)
                samples.e2e.append(seconds)
                for name, (a, b) in PHASES.items():
                    samples.phases[name].append(at[b] - at[a])
                time.sleep(SETTLE)
            console.print(f"run {i + 1}/{runs} {kind}: {seconds:.3f} s")
    # Ticks in /proc/stat and per-process times are counted differently: a few % either way is noise.
    foreign = (foreign_cpu(cpu0), time.perf_counter() - wall0)
    result = client.get(f"/v1/jobs/{job['id']}/result").json()
    samples.words["e2e"] = sum(len(seg["words"]) for seg in result["segments"])
    return samples, foreign


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base", choices=["base", "tiny.en"])
    parser.add_argument("--seconds", type=float, default=60, help="length of the generated speech")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each kind")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    console = Console(width=None if sys.stdout.isatty() else 120)  # no wrapped rows in a log or pipe
    threads = Settings().inference_threads  # the service's default, so both sides use the same threads

    with tempfile.TemporaryDirectory(prefix="diarist-bench-") as tmp:
        tmp_dir = Path(tmp)
        path = speak(long_text(args.seconds), tmp_dir / "speech.wav")
        audio_s = len(decode(path)) / SAMPLE_RATE
        broker = KafkaBroker(tmp_dir / "kafka", port=free_port(), controller_port=free_port())
        console.print(f"starting Kafka and diarist ({args.model}) ...")
        broker.start()
        try:
            (tmp_dir / "svc").mkdir()
            service = Service(tmp_dir / "svc", broker.bootstrap_servers, "bench", model=args.model)
            try:
                service.start("worker")
                service.start("inference")
                service.wait_healthy(timeout=180)
                bench_base_kib = proc_kib("VmRSS", os.getpid())
                model = WhisperModel(str(model_dir(args.model)), device="cpu", compute_type="int8",
                                     cpu_threads=threads, local_files_only=True)
                with service.client() as client:
                    samples, foreign = measure(console, model, client, path, args.runs)
                memory = memory_rows(service)
            except Exception:
                for role in list(service.processes):
                    console.print(f"--- {role}.log (tail) ---\n{service.log(role)[-2000:]}", markup=False)
                raise
            finally:
                service.close()
        finally:
            broker.stop()
    report(console, args, threads, audio_s, samples, memory, bench_base_kib, foreign)


if __name__ == "__main__":
    main()
