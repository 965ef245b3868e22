"""Diarization alone (no transcription) over a list of files: decode and VAD once per file, then
each method, with and without the speaker count given; DER with pyannote.metrics.

Shared by bench/accuracy.py --diarization (today's method beside the new one) and
bench/tune_diarization.py (calibration on the tuning split).
"""
from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def speech(path: str) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The first channel decoded as the pipeline decodes it, and its speech regions."""
    from diarist.streams.inference.media import decode_channels, find_speech

    with tempfile.TemporaryDirectory(prefix="diarist-diar-") as work:
        channel = decode_channels(Path(path), Path(work))[0]
        audio = channel[0:len(channel)]
    return audio, find_speech(audio)


def der_components(turns: list, duration: float, hypothesis_turns: list, collar: float) -> dict[str, float]:
    """pyannote.metrics DER components; reference turns (start, end, speaker, ...), hypothesis
    (start, end, speaker). The collar is the total no-score width around each reference boundary."""
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference, hypothesis = Annotation(), Annotation()
    for i, (start, end, speaker, *_) in enumerate(turns):
        reference[Segment(start, end), i] = f"ref{speaker}"
    for i, (start, end, speaker) in enumerate(hypothesis_turns):
        if end > start:
            hypothesis[Segment(start, end), i] = f"hyp{speaker}"
    uem = Timeline([Segment(0, duration)])
    return DiarizationErrorRate(collar=collar, skip_overlap=False).compute_components(reference, hypothesis, uem=uem)


def run(files: list[dict], methods: dict, hinted_methods: tuple[str, ...] | None = None, log=print,
        after=None) -> list[dict]:
    """Each method on each file without hints, and those of hinted_methods (default: all) with
    speakers_count too; one row per (file, method, hinted): speakers found, turns, seconds.
    after(rows) is called after each file (to save partial results)."""
    from diarist.streams.inference.diarization import SpeakerBounds

    rows = []
    for f in files:
        t0 = time.perf_counter()
        audio, regions = speech(f["path"])
        vad_s = time.perf_counter() - t0
        done = len(rows)
        for name, diarize in methods.items():
            for hinted in (False, True) if hinted_methods is None or name in hinted_methods else (False,):
                bounds = SpeakerBounds(count=f["speakers"]) if hinted else SpeakerBounds()
                t0 = time.perf_counter()
                turns = diarize(audio, regions, bounds)
                seconds = time.perf_counter() - t0
                rows.append({"file": f["name"], "method": name, "hinted": hinted, "seconds": seconds,
                             "vad_seconds": vad_s, "speakers": len({t.speaker for t in turns}),
                             "turns": [(t.start, t.end, t.speaker) for t in turns]})
        log(f"  {f['name']}: {f['duration']:.0f} s, {f['speakers']} speakers; found " + ", ".join(
            f"{r['method']}{' (n given)' if r['hinted'] else ''} {r['speakers']}" for r in rows[done:]))
        if after:
            after(rows)
    return rows


def score(files: list[dict], rows: list[dict], collar: float = 0.25) -> dict:
    """Totals per (method, hinted, group): DER parts, files, count right. Groups: every file,
    each condition, each speaker count, each corpus."""
    by_name = {f["name"]: f for f in files}
    totals: dict = defaultdict(lambda: defaultdict(float))
    for r in rows:
        f = by_name[r["file"]]
        c = der_components(f["turns"], f["duration"], r["turns"], collar)
        corpus = f.get("corpus", "real")
        speakers = f"speakers={f['speakers']}" if corpus == "real" else f"{corpus}:speakers={f['speakers']}"
        for group in ("all", f"condition={f.get('condition', 'clean')}", speakers, f"corpus={corpus}"):
            t = totals[(r["method"], r["hinted"], group)]
            for k in ("missed detection", "false alarm", "confusion", "total"):
                t[k] += c[k]
            t["files"] += 1
            t["right"] += r["speakers"] == f["speakers"]
            t["seconds"] += r["seconds"]
            t["audio"] += f["duration"]
    return totals


def der(t: dict) -> float:
    return 100 * (t["missed detection"] + t["false alarm"] + t["confusion"]) / t["total"] if t["total"] else float("nan")
