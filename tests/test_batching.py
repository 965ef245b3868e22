"""Batched transcription (option batch_size): the windows it decodes, and real jobs with it on
real recorded English (CMU ARCTIC, bench/english.py) and on a long espeak file."""
from __future__ import annotations

import os
import re
from difflib import SequenceMatcher

import numpy as np
import pytest

from diarist.streams.inference import asr, pipeline
from diarist.streams.inference.media import SAMPLE_RATE

from .audio import long_text, speak


def words_of(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


@pytest.mark.unit
def test_speech_regions_are_joined_into_windows_of_at_most_30_s():
    audio = np.zeros(100 * SAMPLE_RATE, dtype=np.float32)
    regions = [(1.0, 5.0), (6.0, 20.0), (21.0, 30.5), (40.0, 45.0), (90.0, 95.0)]
    assert asr.windows(audio, regions) == [(1.0, 30.5), (40.0, 45.0), (90.0, 95.0)]
    assert asr.windows(audio, []) == []
    assert asr.windows(audio, [(98.0, 120.0)]) == [(98.0, 100.0)]  # never past the audio
    all_speech = np.zeros(68719)  # 4.2949375 s: rounded to the millisecond, it would end after the last sample
    assert asr.windows(all_speech, [(0.0, 4.2949375)]) == [(0.0, 4.294)]


@pytest.mark.unit
def test_a_region_longer_than_a_window_is_cut_in_its_pause():
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, 70 * SAMPLE_RATE).astype(np.float32)
    audio[int(24.0 * SAMPLE_RATE):int(24.3 * SAMPLE_RATE)] = 0  # the one pause in 70 s of "speech"
    windows = asr.windows(audio, [(0.0, 70.0)])
    assert 24.0 <= windows[0][1] <= 24.3 and windows[1][0] == windows[0][1]
    assert all(end - start <= 30 for start, end in windows) and windows[-1][1] == 70.0
    assert [w[0] for w in windows[1:]] == [w[1] for w in windows[:-1]]  # nothing lost between them


@pytest.fixture(scope="module")
def base():
    return asr.load("faster-whisper", "base", os.cpu_count() or 2)


def run(transcriber, path, **options) -> dict:
    events: list = []
    result = pipeline.run(transcriber, path, {"task": "TRANSCRIPTION", **options}, lambda *e: events.append(e))
    result["events"] = events
    return result


@pytest.mark.system
def test_a_batched_job_on_real_english_gets_the_words_and_where_they_are(base, tmp_path):
    """Three recorded ARCTIC sentences with pauses between: the batched job writes each
    sentence's words, each word timed inside the span where that sentence was spoken."""
    from bench.english import arctic

    path, spans = arctic(tmp_path / "arctic.wav")
    result = run(base, path, language="en", batch_size=8)
    words = [w for s in result["segments"] for w in s["words"]]
    said = words_of(" ".join(w["word"] for w in words))
    expected = words_of(" ".join(text for _, _, text in spans))
    # base on this voice: "Philip" -> "fill up", "superlative" -> "separat of", "Gregson" -> "gregs in"
    matched = sum(block.size for block in SequenceMatcher(None, said, expected).get_matching_blocks())
    assert matched >= 0.8 * len(expected), said
    for start, end, text in spans:
        inside = [w for w in words if start - 0.3 <= w["start"] and w["end"] <= end + 0.3]
        assert abs(len(inside) - len(text.split())) <= 2, (start, end, text, inside)
        assert words_of(text)[-1] in words_of(inside[-1]["word"]), (text, inside)  # the last word, in its place
    assert all(any(start - 0.3 <= w["start"] and w["end"] <= end + 0.3 for start, end, _ in spans) for w in words)
    assert all(a["start"] <= b["start"] for a, b in zip(words, words[1:]))
    assert all(0 <= w["start"] <= w["end"] <= result["duration"] for w in words)
    assert all(s["speaker"] is not None for s in result["segments"])


@pytest.mark.system
def test_batched_and_sequential_agree_on_a_file_longer_than_one_window(base, tmp_path):
    text = long_text(45)
    path = speak(text, tmp_path / "long.wav")
    batched = run(base, path, language="en", diarization=False, batch_size=4)
    sequential = run(base, path, language="en", diarization=False, batch_size=1)
    b = words_of(" ".join(s["text"] for s in batched["segments"]))
    s = words_of(" ".join(s["text"] for s in sequential["segments"]))
    reference = words_of(text)
    assert abs(len(b) - len(reference)) <= 0.05 * len(reference)
    assert len(set(b) ^ set(s)) <= 0.1 * len(set(reference))
    words = [w for seg in batched["segments"] for w in seg["words"]]
    assert all(a["start"] <= b["start"] for a, b in zip(words, words[1:]))
    assert words[-1]["end"] > 0.8 * batched["duration"]  # the last window was decoded as well
    assert any(kind == "progress" for kind, _ in batched["events"])
