"""Calibrates diarization on the TUNING split of the real-voice corpus (never the evaluation split).

Builds the tuning conversations (bench/corpus.py, every condition), embeds their windows once, then
runs the clustering and resegmentation for each setting of the grid and prints DER (collar 0.25)
per condition and how often the number of speakers is right, without hints and with
speakers_count. The settings chosen from it are the constants of streams/inference/diarization.py.

    python bench/tune_diarization.py [--conversations 12] [--seed 0]
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
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.10, 0.11, 0.12, 0.13, 0.14])
    parser.add_argument("--min-windows", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--change", type=float, nargs="+", default=[0.3])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from diarist.streams.inference import diarization
    from diarist.streams.inference.diarization import SpeakerBounds

    with tempfile.TemporaryDirectory(prefix="diarist-tune-") as tmp:
        files = corpus.build(Path(tmp), "tuning", args.conversations, args.seed)
        print(f"tuning split: {len(files)} files, {sum(f['duration'] for f in files) / 60:.1f} min", flush=True)
        cached = []
        for f in files:
            audio, regions = speech(f["path"])
            cached.append((f, regions, diarization.windows(audio, regions)))
    real_windows = diarization.windows
    current = {}
    diarization.windows = lambda audio, regions: current["w"]  # embeddings computed once above
    try:
        print(f"{'threshold':>9} {'min win':>7} {'change':>6} | {'DER':>5} {'clean':>5} {'tel':>5} {'noisy':>5} "
              f"{'count':>6} | {'DER n':>5} {'count n':>7}")
        for threshold, min_windows, change in itertools.product(args.thresholds, args.min_windows, args.change):
            diarization.MIN_WINDOWS, diarization.CHANGE_THRESHOLD = min_windows, change
            cells = []
            for hinted in (False, True):
                totals: dict[str, dict[str, float]] = {}
                right = 0
                for f, regions, w in cached:
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
            (t0, r0), (t1, r1) = cells
            print(f"{threshold:9.2f} {min_windows:7d} {change:6.2f} | {der(t0['all']):5.1f} {der(t0['clean']):5.1f} "
                  f"{der(t0['telephone']):5.1f} {der(t0['noisy']):5.1f} {r0:3d}/{len(cached):<2d} | "
                  f"{der(t1['all']):5.1f} {r1:4d}/{len(cached)}", flush=True)
    finally:
        diarization.windows = real_windows
    print("DER n, count n: with speakers_count given. DER in %, collar 0.25 (total width), pyannote.metrics.")


if __name__ == "__main__":
    main()
