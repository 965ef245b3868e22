"""Calibrates diarization on the TUNING split of the real-voice corpus (never the evaluation split).

Builds the tuning conversations (bench/corpus.py, every condition), embeds their windows once, then
runs the clustering and resegmentation for each setting of the grid and prints DER (collar 0.25)
per condition and how often the number of speakers is right, without hints and with
speakers_count; and the same, without hints, on 15 espeak-ng dialogues kept apart from the scored
ones (languages nl, pt, pl, sv, da and the texts of tests/audio.py; bench/accuracy.py scores en,
es, fr, de, it). The settings chosen from it are the constants of streams/inference/diarization.py.

    OMP_NUM_THREADS=1 python bench/tune_diarization.py [--conversations 12] [--seed 0]
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import corpus  # noqa: E402
from bench.diarization_runs import der, der_components, speech  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.07, 0.08, 0.09, 0.11])
    parser.add_argument("--size-terms", type=float, nargs="+", default=[0.0, 0.2, 0.25, 0.3])
    parser.add_argument("--jumps", type=float, nargs="+", default=[1.5, 1.7, 2.0, 1e9], help="1e9: no jump rule")
    parser.add_argument("--min-windows", type=int, nargs="+", default=[5])
    parser.add_argument("--change", type=float, nargs="+", default=[0.3])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from diarist.streams.inference import diarization
    from diarist.streams.inference.diarization import SpeakerBounds

    with tempfile.TemporaryDirectory(prefix="diarist-tune-") as tmp:
        files = corpus.build(Path(tmp), "tuning", args.conversations, args.seed)
        print(f"tuning split: {len(files)} files, {sum(f['duration'] for f in files) / 60:.1f} min", flush=True)
        held_out = espeak_dialogues(Path(tmp) / "espeak")
        cached, espeak = [], []
        for f in files + held_out:
            audio, regions = speech(f["path"])
            (espeak if f["condition"] == "espeak" else cached).append((f, regions, diarization.windows(audio, regions)))
    real_windows = diarization.windows
    current = {}
    diarization.windows = lambda audio, regions: current["w"]  # embeddings computed once above
    try:
        print(f"{'threshold':>9} {'size':>4} {'jump':>5} {'min win':>7} {'change':>6} | {'DER':>5} {'clean':>5} "
              f"{'tel':>5} {'noisy':>5} {'count':>6} | {'DER n':>5} {'count n':>7} | {'espeak':>6} {'count':>5}")
        for threshold, size, jump, min_windows, change in itertools.product(
                args.thresholds, args.size_terms, args.jumps, args.min_windows, args.change):
            diarization.MIN_WINDOWS, diarization.CHANGE_THRESHOLD = min_windows, change
            diarization.SIZE_TERM, diarization.JUMP = size, jump
            cells = []
            for items, hinted in ((cached, False), (cached, True), (espeak, False)):
                totals: dict[str, dict[str, float]] = {}
                right = 0
                for f, regions, w in items:
                    current["w"] = w
                    bounds = SpeakerBounds(count=f["speakers"] if hinted else None, threshold=threshold)
                    turns = diarization.diarize(None, regions, bounds)
                    c = der_components(f["turns"], f["duration"], [(t.start, t.end, t.speaker) for t in turns], 0.25)
                    for group in ("all", f["condition"]):
                        t = totals.setdefault(group, dict.fromkeys(c, 0.0))
                        for k, v in c.items():
                            t[k] += v
                    right += len({t.speaker for t in turns}) == f["speakers"]
                cells.append((totals, right))
            (t0, r0), (t1, r1), (t2, r2) = cells
            print(f"{threshold:9.3f} {size:4.2f} {min(jump, 99):5.1f} {min_windows:7d} {change:6.2f} | "
                  f"{der(t0['all']):5.1f} {der(t0['clean']):5.1f} {der(t0['telephone']):5.1f} {der(t0['noisy']):5.1f} "
                  f"{r0:3d}/{len(cached):<2d} | {der(t1['all']):5.1f} {r1:4d}/{len(cached)} | "
                  f"{der(t2['all']):6.1f} {r2:2d}/{len(espeak)}", flush=True)
    finally:
        diarization.windows = real_windows
    print("DER n, count n: with speakers_count given; espeak: the held-out dialogues, no hints; jump 99: no jump "
          "rule. DER in %, collar 0.25 (total width), pyannote.metrics.")


def espeak_dialogues(directory: Path) -> list[dict]:
    """15 espeak-ng dialogues (2, 3, 4 voices) in languages and with texts that bench/accuracy.py
    does not score, so that the jump rule is not tuned on the dialogues it is judged on."""
    from soundfile import info

    from tests.audio import DIALOGUE, SENTENCES, dialogue

    directory.mkdir(parents=True, exist_ok=True)
    lines, files = SENTENCES + DIALOGUE, []
    for i, language in enumerate(["nl", "pt", "pl", "sv", "da"]):
        for speakers in (2, 3, 4):
            path = directory / f"{language}-{speakers}.wav"
            turns = dialogue(path, speakers, (lines[i:] + lines[:i])[:12], language=language)
            files.append({"name": path.stem, "path": str(path), "speakers": speakers, "condition": "espeak",
                          "duration": info(str(path)).duration, "turns": turns})
    return files


if __name__ == "__main__":
    main()
