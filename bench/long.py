"""One long file through diarist's pipeline: wall time, real-time factor and peak memory.

Makes `--minutes` of speech by repeating a generated two-voice dialogue (espeak-ng), then runs
`pipeline.run` on it in a fresh subprocess (faster-whisper on the CPU, int8) and reports the
subprocess's peak resident memory (VmHWM), with diarization on (the default) and off.

    python bench/long.py [--minutes 60] [--model base] [--diarization on off] [--batch-size 8]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procstat import cpu_mark, foreign_cpu, proc_kib  # noqa: E402
from diarist.streams.inference.asr import DEFAULT_BATCH_SIZE  # noqa: E402

TARGET_BYTES = 1.5e9  # peak for a one-hour file with base int8: 1.5 GB (1,431 MiB)


def worker(path: str, model: str, diarization: str, out_path: str, batch_size: str) -> None:
    """In the subprocess: load the model, run the pipeline once, write what it measured."""
    from diarist.infra.settings import Settings
    from diarist.streams.inference import asr, pipeline
    from diarist.streams.inference.process import bound_malloc

    bound_malloc()  # as in the service's engine process

    peaks = {"RssAnon": 0, "RssFile": 0}
    done = threading.Event()

    def sample() -> None:  # which part of the resident memory is anonymous and which file-backed
        while not done.wait(0.2):
            for key in peaks:
                peaks[key] = max(peaks[key], proc_kib(key) or 0)

    threading.Thread(target=sample, daemon=True).start()
    threads = Settings().inference_threads
    t0 = time.perf_counter()
    transcriber = asr.load("faster-whisper", model, threads)
    loaded = proc_kib("VmRSS")
    load_s = time.perf_counter() - t0
    marks: dict[str, float] = {}

    def emit(kind: str, data: dict) -> None:
        marks.setdefault(kind, time.perf_counter())

    t0 = time.perf_counter()
    result = pipeline.run(transcriber, Path(path), {"task": "TRANSCRIPTION", "diarization": diarization == "on",
                                                     "batch_size": int(batch_size)}, emit)
    seconds = time.perf_counter() - t0
    done.set()
    Path(out_path).write_text(json.dumps({
        "threads": threads, "device": transcriber.device, "load_seconds": load_s, "seconds": seconds,
        "diarized_after": marks.get("diarized", t0) - t0, "peak_kib": proc_kib("VmHWM"),
        "after_load_kib": loaded, "peak_anon_kib": peaks["RssAnon"], "peak_file_kib": peaks["RssFile"],
        "speakers": result["speakers"], "segments": len(result["segments"]),
        "text": " ".join(s["text"] for s in result["segments"])}))


def run_one(path: Path, model: str, diarization: str, directory: Path, batch_size: int) -> dict:
    out = directory / f"result-{diarization}.json"
    cpu0, wall0 = cpu_mark(), time.perf_counter()
    subprocess.run([sys.executable, __file__, "--worker", str(path), model, diarization, str(out),
                    str(batch_size)], check=True)
    wall = time.perf_counter() - wall0
    foreign = foreign_cpu(cpu0)
    return json.loads(out.read_text()) | {"foreign_cpu": foreign, "wall": wall, "diarization": diarization}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60, help="length of the generated file")
    parser.add_argument("--model", default="base", choices=["base", "tiny.en"])
    parser.add_argument("--diarization", nargs="+", default=["on", "off"], choices=["on", "off"],
                        help="runs to make, in this order (each in a fresh subprocess)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="windows decoded at once (1: sequential; default: the service's, %(default)s)")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    import jiwer
    import soundfile
    from rich.console import Console
    from rich.table import Table

    from tests.audio import DIALOGUE, dialogue, repeated

    console = Console(width=None if sys.stdout.isatty() else 140)
    started = datetime.now()
    with tempfile.TemporaryDirectory(prefix="diarist-long-") as tmp:
        directory = Path(tmp)
        source = directory / "source.wav"
        turns = dialogue(source, 2, DIALOGUE + DIALOGUE[::-1])
        source_s = soundfile.info(str(source)).duration
        times = max(1, math.ceil(args.minutes * 60 / source_s))
        path = repeated(directory / "long.wav", source, times)
        audio_s = soundfile.info(str(path)).duration
        reference = " ".join(" ".join(t[3] for t in turns) for _ in range(times))
        console.print(f"{audio_s / 60:.1f} min of audio: a {source_s:.1f} s two-voice dialogue repeated {times} times "
                      f"({path.stat().st_size / 2**20:,.0f} MiB WAV)")
        runs = []
        for diarization in args.diarization:
            console.print(f"pipeline.run, faster-whisper {args.model}, diarization {diarization} ...")
            runs.append(run_one(path, args.model, diarization, directory, args.batch_size))
            r = runs[-1]
            console.print(f"  done in {r['seconds']:.0f} s, peak {r['peak_kib'] / 1024:,.0f} MiB")

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    console.print(f"date: {started:%Y-%m-%d %H:%M}; command: python bench/long.py {' '.join(sys.argv[1:])}")
    console.print(f"machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}; "
                  f"faster-whisper {args.model}, {runs[0]['device']}, int8, {runs[0]['threads']} threads, "
                  f"batch size {args.batch_size}; load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    normalise = jiwer.Compose([jiwer.ToLowerCase(), jiwer.SubstituteRegexes({r"[^\w\s]": " "}),
                               jiwer.RemoveMultipleSpaces(), jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])
    table = Table(title=f"{audio_s / 60:.1f} min file through pipeline.run (fresh subprocess per run)")
    for name, justify in (("diarization", "left"), ("seconds", "right"), ("RTF", "right"),
                          ("to diarized", "right"), ("speakers", "right"), ("WER %", "right"),
                          ("peak MiB (VmHWM)", "right"), ("of which anon / file", "right"),
                          ("after load MiB", "right"), ("≤ 1.5 GB", "left"), ("other CPU", "right")):
        table.add_column(name, justify=justify)
    for r in runs:
        wer = jiwer.wer(reference, r["text"], reference_transform=normalise, hypothesis_transform=normalise)
        share = r["foreign_cpu"] / (r["wall"] * (os.cpu_count() or 1))
        table.add_row(r["diarization"], f"{r['seconds']:.0f}", f"{audio_s / r['seconds']:.2f}×",
                      f"{r['diarized_after']:.0f} s", str(r["speakers"]), f"{100 * wer:.1f}",
                      f"{r['peak_kib'] / 1024:,.0f}",
                      f"{r['peak_anon_kib'] / 1024:,.0f} / {r['peak_file_kib'] / 1024:,.0f}",
                      f"{r['after_load_kib'] / 1024:,.0f}",
                      "yes" if r["peak_kib"] * 1024 <= TARGET_BYTES else "[bold red]NO", f"{share:.1%}")
    console.print(table)
    console.print("seconds: pipeline.run alone (model already loaded); to diarized: probe + decode + VAD + "
                  "speaker turns. anon / file: the largest anonymous and file-backed (memory-mapped decoded "
                  "audio, libraries) resident sizes seen, sampled every 0.2 s; they need not peak together. "
                  "other CPU: share of the machine used by other processes meanwhile (above 5% the time is skewed).")


if __name__ == "__main__":
    main()
