"""Batched transcription (option batch_size): the windows it decodes, and real jobs with it on
real recorded English (CMU ARCTIC and a LibriVox reading, bench/english.py) and on a long espeak
file."""
from __future__ import annotations

import json
import os
import re

import jiwer
import numpy as np
import pytest

from diarist.streams.inference import asr, pipeline
from diarist.streams.inference.media import SAMPLE_RATE

from .audio import long_text, speak


def words_of(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


@pytest.mark.unit
def test_speech_regions_are_grouped_into_windows_of_at_most_30_s_of_speech():
    audio = np.zeros(100 * SAMPLE_RATE, dtype=np.float32)
    regions = [(1.0, 5.0), (6.0, 20.0), (21.0, 30.5), (40.0, 45.0), (90.0, 95.0)]
    assert asr.windows(audio, regions) == [[(1.0, 5.0), (6.0, 20.0), (21.0, 30.5)], [(40.0, 45.0), (90.0, 95.0)]]
    assert asr.windows(audio, []) == []
    assert asr.windows(audio, [(98.0, 120.0)]) == [[(98.0, 100.0)]]  # never past the audio


@pytest.mark.unit
def test_a_region_longer_than_a_window_is_cut_in_its_pause():
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, 70 * SAMPLE_RATE).astype(np.float32)
    audio[int(24.0 * SAMPLE_RATE):int(24.3 * SAMPLE_RATE)] = 0  # the one pause in 70 s of "speech"
    windows = asr.windows(audio, [(0.0, 70.0)])
    pieces = [piece for window in windows for piece in window]
    assert 24.0 <= pieces[0][1] <= 24.3
    assert all(sum(end - start for start, end in window) <= 30 for window in windows) and pieces[-1][1] == 70.0
    assert [p[0] for p in pieces[1:]] == [p[1] for p in pieces[:-1]]  # nothing lost between them


@pytest.mark.unit
def test_spliced_speech_maps_its_times_back_to_the_recording():
    audio = np.arange(10 * SAMPLE_RATE, dtype=np.float32)
    spliced = asr.Spliced(audio, [(1.0, 2.0), (5.0, 6.5)])
    assert len(spliced.audio) == int(2.5 * SAMPLE_RATE) and spliced.audio[SAMPLE_RATE] == 5 * SAMPLE_RATE
    assert spliced.time(0.5) == 1.5 and spliced.time(1.0) == 5.0 and spliced.time(1.75) == 5.75
    assert spliced.time(1.0, end=True) == 2.0  # an end on the joint stays in the piece before it
    assert spliced.time(9.0) == 6.5  # never past the piece
    # A file that is all speech: the windows end at its last sample, not after (faster-whisper
    # asserts that what its VAD removed is not negative).
    all_speech = np.zeros(68719, dtype=np.float32)  # 4.2949375 s
    [[piece]] = asr.windows(all_speech, [(0.0, 4.2949375)])
    assert len(asr.Spliced(all_speech, [piece]).audio) == 68719


@pytest.mark.unit
@pytest.mark.parametrize("value", [0, 65, -1, 2.5, "8", True, [8]])
def test_a_bad_batch_size_is_a_422_problem_and_stores_nothing(tmp_path, value):
    """Through the upload path of the edge (tests/fakes.py job service), as a client sees it."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from diarist.api import ingest
    from diarist.api.problems import EXCEPTION_HANDLERS

    from .fakes import job_service

    jobs = job_service(tmp_path, max_media_bytes=1000)

    async def upload(request: Request) -> JSONResponse:
        _, options = await ingest.from_upload(request, jobs)
        return JSONResponse({"options": options})

    client = TestClient(Starlette(routes=[Route("/upload", upload, methods=["POST"])],
                                  exception_handlers=EXCEPTION_HANDLERS))
    refused = client.post("/upload", files={"media": ("a.wav", b"RIFF")},
                          data={"options": json.dumps({"batch_size": value})})
    assert refused.status_code == 422 and refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["detail"] == "batch_size must be a whole number from 1 to 64"
    taken = client.post("/upload", files={"media": ("a.wav", b"RIFF")}, data={"options": '{"batch_size": 16}'})
    assert taken.status_code == 200 and taken.json()["options"]["batch_size"] == 16


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
    """Three recorded ARCTIC sentences, four times over, with 3 s pauses between (39 s of
    speech: two windows, decoded in one batch): the job writes each sentence's words, each word
    timed inside the span where that sentence was spoken."""
    from bench.english import arctic
    from diarist.streams.inference.media import decode_channels, find_speech

    path, spans = arctic(tmp_path / "arctic.wav", gap=3.0, repeat=4)
    [audio] = decode_channels(path, tmp_path)
    assert len(asr.windows(audio, find_speech(audio))) == 2
    result = run(base, path, language="en", batch_size=8)
    words = [w for s in result["segments"] for w in s["words"]]
    said = words_of(" ".join(w["word"] for w in words))
    expected = words_of(" ".join(text for _, _, text in spans))
    # base on this voice, batched or not: "Philip" -> "fill up", "superlative" -> "separat of" (WER 14%)
    assert jiwer.wer(" ".join(expected), " ".join(said)) <= 0.2, " ".join(said)
    for start, end, text in spans:
        inside = [w for w in words if start - 0.3 <= w["start"] and w["end"] <= end + 0.3]
        assert abs(len(inside) - len(text.split())) <= 2, (start, end, text, inside)
        assert words_of(text)[-1] in words_of(inside[-1]["word"]), (text, inside)  # the last word, in its place
    assert all(any(start - 0.3 <= w["start"] and w["end"] <= end + 0.3 for start, end, _ in spans) for w in words)
    assert all(a["start"] <= b["start"] for a, b in zip(words, words[1:]))
    assert all(0 <= w["start"] <= w["end"] <= result["duration"] for w in words)
    assert all(s["speaker"] is not None for s in result["segments"])


@pytest.mark.system
def test_a_batched_job_on_a_real_reading_identifies_english_and_gets_its_words(base, tmp_path):
    """Shakespeare's first sonnet read for LibriVox (53 s: two windows of speech, which language
    identification then decoding both use): English, and the sonnet's words."""
    import soundfile

    from bench.english import recordings

    [(_, audio, text)] = [r for r in recordings() if r[0] == "sonnet-p001"]
    path = tmp_path / "sonnet.wav"
    soundfile.write(str(path), audio, SAMPLE_RATE)
    result = run(base, path, batch_size=2)
    said = " ".join(words_of(" ".join(s["text"] for s in result["segments"])))
    assert result["language"] == "en" and result["language_probability"] > 0.9
    assert jiwer.wer(" ".join(words_of(text)), said) <= 0.15, said


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
