"""What diarist costs against the faster-whisper call it wraps: time per job, accuracy, throughput, memory.

Starts a real Kafka broker, the jobs worker and an inference worker, then times the same speech
file three ways in one run, taking turns: the bare sequential call in this process, the bare
batched call (BatchedInferencePipeline) in this process, and diarist end to end through the HTTP
API (POST to COMPLETED, batched as by default). Then WER of each way on the espeak file and on
real recorded English (bench/english.py: 13 recordings, about 590 words, 5 voices), and a throughput run: --jobs
jobs queued at once against the same number of bare sequential calls one after the other.

    python bench/e2e.py [--model base|tiny.en] [--seconds 60] [--runs 3] [--batch-size N] [--jobs 6]
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
import jiwer
import soundfile
from faster_whisper import BatchedInferencePipeline, WhisperModel
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faster_whisper.audio import decode_audio as decode  # noqa: E402

from bench.english import recordings  # noqa: E402
from bench.procstat import children, cpu_mark, foreign_cpu, proc_kib  # noqa: E402
from diarist.infra.broker import KafkaBroker  # noqa: E402
from diarist.infra.settings import Settings  # noqa: E402
from diarist.streams.inference.asr import DEFAULT_BATCH_SIZE  # noqa: E402
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
    "  probe + decode + VAD + diarization (→ diarized_at)": ("started_at", "diarized_at"),
    "  language + transcribe (diarized_at → completed_at)": ("diarized_at", "completed_at"),
    "completion seen (completed_at → poll)": ("completed_at", "seen"),
}
JOB_TIMES = ("created_at", "started_at", "diarized_at", "completed_at")
WAYS = {"bare": "bare faster-whisper, sequential (decode + transcribe)",
        "batched": "bare faster-whisper, BatchedInferencePipeline",
        "e2e": "diarist end to end, batched (POST → COMPLETED seen)"}
# Fillers ("uh", "um") are in some references and never in Whisper's text: left out of both.
NORMALISE = jiwer.Compose([jiwer.ToLowerCase(), jiwer.SubstituteRegexes({r"[^\w\s]": " ", r"\b(uh|um)\b": " "}),
                           jiwer.RemoveMultipleSpaces(), jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])


@dataclass
class Samples:
    times: dict[str, list[float]] = field(default_factory=lambda: {way: [] for way in WAYS})
    phases: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in PHASES})
    stages: dict[str, list[float]] = field(default_factory=dict)  # pipeline stages, from the worker's log
    texts: dict[str, str] = field(default_factory=dict)
    words: dict[str, int] = field(default_factory=dict)


@dataclass
class Bare:
    model: WhisperModel
    batched: BatchedInferencePipeline
    batch_size: int

    def run(self, path: Path, batched: bool) -> tuple[float, str, int]:
        """What the engine does with the model, timed the same way; returns (seconds, text, words)."""
        language = None if self.model.model.is_multilingual else "en"
        start = time.perf_counter()
        audio = decode(path)
        if batched:
            segments, _ = self.batched.transcribe(audio, language=language, beam_size=5, word_timestamps=True,
                                                  vad_filter=True, no_speech_threshold=None,
                                                  batch_size=self.batch_size)
        else:
            segments, _ = self.model.transcribe(audio, language=language, beam_size=5, word_timestamps=True,
                                                vad_filter=True, no_speech_threshold=None)
        segments = list(segments)  # segments is lazy: consuming it is the work
        seconds = time.perf_counter() - start
        return seconds, " ".join(s.text.strip() for s in segments), sum(len(s.words or []) for s in segments)


def poll(client: httpx.Client, job: dict, deadline: float) -> dict:
    while job["status"] not in TERMINAL:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"job {job['id']} still {job['status']}")
        time.sleep(POLL)
        job = client.get(f"/v1/jobs/{job['id']}").json()
    if job["status"] != "COMPLETED":
        raise RuntimeError(f"job {job['id']} ended {job['status']}: {job['failure_reason']}")
    return job


def e2e_run(client: httpx.Client, path: Path, options: str | None, timeout: float = 900
            ) -> tuple[float, dict[str, float], dict]:
    """POST → COMPLETED seen; returns (seconds, epoch seconds of each moment, job)."""
    posted, start = time.time(), time.perf_counter()
    job = poll(client, submit(client, path, options), start + timeout)
    seconds, seen = time.perf_counter() - start, time.time()
    moments = {"post": posted, "seen": seen}
    # The job's timestamps come from the same machine's clock, so they line up with time.time().
    moments |= {k: datetime.fromisoformat(job[k]).timestamp() for k in JOB_TIMES}
    return seconds, moments, job


def result_text(client: httpx.Client, job: dict) -> tuple[str, int]:
    result = client.get(f"/v1/jobs/{job['id']}/result").json()
    segments = sorted(result["segments"], key=lambda seg: seg["start"])
    return " ".join(seg["text"] for seg in segments), sum(len(seg["words"]) for seg in segments)


def stage_times(service: Service, job_id: str) -> dict[str, float]:
    """The pipeline's own stage times of one job, from the inference worker's log line."""
    for line in service.log("inference").splitlines():
        if f"job {job_id}:" in line and " s of media in " in line:
            inside = line[line.rindex("(") + 1:line.rindex(")")]
            return {stage: float(seconds) for stage, seconds in
                    (part.rsplit(" ", 2)[:2] for part in inside.split(", "))}
    return {}


def wer(reference: str, hypothesis: str) -> float:
    return 100 * jiwer.wer(reference, hypothesis, reference_transform=NORMALISE, hypothesis_transform=NORMALISE)


def real_english(directory: Path) -> list[tuple[Path, str]]:
    """Every recording of bench/english.py as a file of its own, as a user would send it: (file, reference)."""
    directory.mkdir()
    out = []
    for name, audio, text in recordings():
        soundfile.write(str(directory / f"{name}.wav"), audio, SAMPLE_RATE, subtype="PCM_16")
        out.append((directory / f"{name}.wav", text))
    return out


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


@dataclass
class Accuracy:
    espeak: dict[str, float] = field(default_factory=dict)
    real: dict[str, float] = field(default_factory=dict)
    real_seconds: float = 0.0
    real_words: int = 0
    real_files: int = 0


@dataclass
class Throughput:
    jobs: int = 0
    audio_s: float = 0.0
    wall: dict[str, float] = field(default_factory=dict)


def report(console: Console, args: argparse.Namespace, threads: int, audio_s: float, s: Samples,
           accuracy: Accuracy, throughput: Throughput, memory: list[tuple[str, int, int | None, int | None]],
           bench_base_kib: int | None, foreign: tuple[float, float], load: tuple[float, float, float]) -> None:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    console.print(f"date: {datetime.now():%Y-%m-%d %H:%M}; command: python bench/e2e.py {' '.join(sys.argv[1:])}")
    console.print(f"machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
                  f"Python {platform.python_version()}, faster-whisper {faster_whisper.__version__}, "
                  f"ctranslate2 {ctranslate2.__version__}; load average at the start {load[0]:.2f} {load[1]:.2f} "
                  f"{load[2]:.2f}")
    console.print(f"model: {args.model} (cpu, int8, cpu_threads={threads}), beam 5, word timestamps; batch size "
                  f"{args.batch_size}; audio: {audio_s:.1f} s espeak-ng English; {args.runs} timed runs of each way, "
                  "order rotated, after one warm-up each")
    console.print("words transcribed: " + ", ".join(f"{way} {n}" for way, n in s.words.items()))
    share = foreign[0] / (foreign[1] * (os.cpu_count() or 1))
    console.print(f"CPU used by other processes during the timed runs: about {foreign[0]:.1f} s in {foreign[1]:.1f} s "
                  f"({share:.0%} of the machine)" + ("  [bold red]figures are skewed: the ratios, measured side by "
                                                     "side, hold better than the seconds" if share > 0.05 else ""))

    def rtf(seconds: float) -> str:
        return f"{audio_s / seconds:.2f}×" if seconds > 0 else "-"

    table = Table(title="Seconds per job (RTF = audio seconds / seconds)")
    for name, justify in (("", "left"), ("median", "right"), ("min", "right"), ("RTF median", "right"),
                          ("RTF best", "right")):
        table.add_column(name, justify=justify)

    def row(label: str, values: list[float], with_rtf: bool = True) -> None:
        if not values:
            return
        med, low = statistics.median(values), min(values)
        table.add_row(label, f"{med:.3f}", f"{low:.3f}", rtf(med) if with_rtf else "", rtf(low) if with_rtf else "")

    for way, label in WAYS.items():
        row(label, s.times[way])
    for name, values in s.phases.items():
        row("  " + name, values, with_rtf=name.startswith("processing"))
    for stage, values in s.stages.items():
        row(f"    pipeline stage: {stage}", values, with_rtf=False)
    bare = s.times["bare"]
    for way in ("batched", "e2e"):
        ratio_med = statistics.median(s.times[way]) / statistics.median(bare)
        ratio_min = min(s.times[way]) / min(bare)
        table.add_row(f"{way} / bare sequential" + ("  (target ≤ 0.80)" if way == "e2e" else ""),
                      f"{ratio_med:.2f}×", f"{ratio_min:.2f}×", "", "")
    if s.stages.get("diarization") and s.stages.get("transcription"):
        share_d = statistics.median(s.stages["diarization"]) / statistics.median(s.stages["transcription"])
        table.add_row("diarization / transcription (target ≤ 10%)", f"{share_d:.1%}", "", "", "")
    console.print(table)

    acc = Table(title="WER % (lowercased, punctuation removed; jiwer)")
    real = f"real English: {accuracy.real_files} files, {accuracy.real_seconds:.0f} s, {accuracy.real_words} words"
    for name, justify in (("way", "left"), (f"espeak {audio_s:.0f} s", "right"), (real, "right")):
        acc.add_column(name, justify=justify)
    for way, label in WAYS.items():
        acc.add_row(label, f"{accuracy.espeak.get(way, float('nan')):.2f}",
                    f"{accuracy.real.get(way, float('nan')):.2f}")
    acc.add_row("diarist − bare sequential (target ≤ +0.3)",
                f"{accuracy.espeak['e2e'] - accuracy.espeak['bare']:+.2f}",
                f"{accuracy.real['e2e'] - accuracy.real['bare']:+.2f}")
    console.print(acc)

    if throughput.jobs:
        thr = Table(title=f"Throughput: {throughput.jobs} jobs of {throughput.audio_s / throughput.jobs:.0f} s "
                          "(audio seconds per second of wall time)")
        for name, justify in (("way", "left"), ("wall s", "right"), ("audio s / s", "right"), ("vs bare", "right")):
            thr.add_column(name, justify=justify)
        labels = {"bare": f"bare sequential, {throughput.jobs} calls one after the other",
                  "batched": f"bare batched, {throughput.jobs} calls one after the other",
                  "e2e": f"diarist, {throughput.jobs} jobs POSTed at once, first POST → last COMPLETED"}
        for way, wall in throughput.wall.items():
            thr.add_row(labels[way], f"{wall:.1f}", f"{throughput.audio_s / wall:.2f}",
                        f"{throughput.wall['bare'] / wall:.2f}×")
        console.print(thr)

    mem = Table(title="Memory (MiB; peak = VmHWM)")
    for name, justify in (("process", "left"), ("pid", "right"), ("peak", "right"), ("now", "right")):
        mem.add_column(name, justify=justify)
    for label, pid, peak, now in memory:
        mem.add_row(label, str(pid), mib(peak), mib(now))
    mem.add_row("bench process, bare calls (ru_maxrss)", str(os.getpid()),
                mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), mib(proc_kib("VmRSS", os.getpid())))
    mem.add_row("  of which before the model was loaded (VmRSS)", "", mib(bench_base_kib), "")
    console.print(mem)
    console.print("The bench figure includes its own imports, HTTP client and the decoded audio as well.")


def measure(console: Console, bare: Bare, client: httpx.Client, service: Service, path: Path,
            runs: int, options: str) -> tuple[Samples, tuple[float, float]]:
    """The timed runs; also (CPU seconds used by other processes meanwhile, wall seconds)."""
    samples = Samples()
    # First calls load the VAD model, open Kafka consumers, etc.: kept out of the figures.
    console.print("warming up ...")
    bare.run(path, False)
    bare.run(path, True)
    e2e_run(client, path, options)
    time.sleep(SETTLE)
    # CPU that the machine spent outside this process tree skews the figures: measure it.
    cpu0, wall0 = cpu_mark(), time.perf_counter()
    order = list(WAYS)
    for i in range(runs):
        # Rotating the order keeps drift (caches, thermals, the neighbours' load) from favouring one way.
        for way in order[i % 3:] + order[:i % 3]:
            if way == "e2e":
                seconds, at, job = e2e_run(client, path, options)
                for name, (a, b) in PHASES.items():
                    samples.phases[name].append(at[b] - at[a])
                time.sleep(SETTLE)
                for stage, value in stage_times(service, job["id"]).items():
                    samples.stages.setdefault(stage, []).append(value)
                samples.texts[way], samples.words[way] = result_text(client, job)
            else:
                seconds, samples.texts[way], samples.words[way] = bare.run(path, way == "batched")
            samples.times[way].append(seconds)
            console.print(f"run {i + 1}/{runs} {way}: {seconds:.3f} s")
    # Ticks in /proc/stat and per-process times are counted differently: a few % either way is noise.
    foreign = (foreign_cpu(cpu0), time.perf_counter() - wall0)
    return samples, foreign


def accuracy_on(console: Console, bare: Bare, client: httpx.Client, samples: Samples, reference: str,
                real: list[tuple[Path, str]], options: str) -> Accuracy:
    """WER of each way on the espeak file (its texts from the timed runs), and on the real
    recordings, each sent as its own file, their texts joined against their references joined."""
    out = Accuracy(espeak={way: wer(reference, text) for way, text in samples.texts.items()},
                   real_seconds=sum(soundfile.info(str(path)).duration for path, _ in real),
                   real_words=sum(len(NORMALISE(text)[0]) for _, text in real), real_files=len(real))
    console.print(f"real English: {len(real)} recordings, each way once ...")
    for way in WAYS:
        texts = []
        for path, _ in real:
            if way == "e2e":
                _, _, job = e2e_run(client, path, options)
                texts.append(result_text(client, job)[0])
            else:
                texts.append(bare.run(path, way == "batched")[1])
        out.real[way] = wer(" ".join(text for _, text in real), " ".join(texts))
        console.print(f"  {way}: {' | '.join(texts)!r}", markup=False)
    return out


def throughput_of(console: Console, bare: Bare, client: httpx.Client, path: Path, jobs: int, audio_s: float,
                  options: str) -> Throughput:
    """`jobs` jobs POSTed at once, first POST → last COMPLETED; the bare calls, `jobs` of each
    kind, half before the jobs and half after (bare, batched, jobs, batched, bare), so that the
    load drifting during the run favours no way."""
    out = Throughput(jobs=jobs, audio_s=jobs * audio_s, wall={way: 0.0 for way in WAYS})
    console.print(f"throughput: {jobs} jobs ...")

    def calls(way: str, n: int) -> None:
        start = time.perf_counter()
        for _ in range(n):
            bare.run(path, way == "batched")
        out.wall[way] += time.perf_counter() - start

    first = jobs // 2
    calls("bare", first)
    calls("batched", first)
    start = time.perf_counter()
    queued = [submit(client, path, options) for _ in range(jobs)]
    for job in queued:
        poll(client, job, start + 1800)
    out.wall["e2e"] = time.perf_counter() - start
    time.sleep(SETTLE)
    calls("batched", jobs - first)
    calls("bare", jobs - first)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base", choices=["base", "tiny.en"])
    parser.add_argument("--seconds", type=float, default=60, help="length of the generated speech")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each way")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="for the bare batched call and diarist's jobs (diarist's default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=6, help="jobs in the throughput run (0: none)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    console = Console(width=None if sys.stdout.isatty() else 140)  # no wrapped rows in a log or pipe
    threads = Settings().inference_threads  # the service's default, so both sides use the same threads
    options = f'{{"batch_size": {args.batch_size}}}'
    load = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="diarist-bench-") as tmp:
        tmp_dir = Path(tmp)
        reference = long_text(args.seconds)
        path = speak(reference, tmp_dir / "speech.wav")
        audio_s = len(decode(path)) / SAMPLE_RATE
        real = real_english(tmp_dir / "english")
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
                bare = Bare(model, BatchedInferencePipeline(model), args.batch_size)
                with service.client() as client:
                    samples, foreign = measure(console, bare, client, service, path, args.runs, options)
                    accuracy = accuracy_on(console, bare, client, samples, reference, real, options)
                    throughput = (throughput_of(console, bare, client, path, args.jobs, audio_s, options)
                                  if args.jobs else Throughput())
                memory = memory_rows(service)
            except Exception:
                for role in list(service.processes):
                    console.print(f"--- {role}.log (tail) ---\n{service.log(role)[-2000:]}", markup=False)
                raise
            finally:
                service.close()
        finally:
            broker.stop()
    report(console, args, threads, audio_s, samples, accuracy, throughput, memory, bench_base_kib, foreign, load)


if __name__ == "__main__":
    main()
