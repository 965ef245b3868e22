"""Language identification: windows of speech only, several for long speech, pooled confidences;
and the real base model on real voices of the corpus (bench/corpus.py)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from diarist.streams.inference import pipeline

SR = pipeline.SAMPLE_RATE
WINDOW = int(pipeline.LANGUAGE_WINDOW_SECONDS * SR)


class Fake:
    """Records what the engine is given; answers each call with the next distribution."""
    multilingual = True
    device = "cpu"

    def __init__(self, answers: list[list[tuple[str, float]]] | None = None) -> None:
        self.calls: list[np.ndarray] = []
        self.answers = answers or []

    def detect_language(self, audio: np.ndarray):
        self.calls.append(np.array(audio))
        ranked = self.answers[len(self.calls) - 1] if self.answers else [("it", 0.8), ("es", 0.2)]
        return ranked[0][0], ranked[0][1], ranked


def channel(seconds: float, regions: list[tuple[float, float]]) -> np.ndarray:
    """Speech samples hold their own index + 1 (so a window tells where it came from); silence is 0."""
    audio = np.zeros(int(seconds * SR), dtype=np.float32)
    for start, end in regions:
        audio[int(start * SR):int(end * SR)] = np.arange(int(start * SR), int(end * SR)) + 1
    return audio


@pytest.mark.unit
def test_long_speech_gives_several_full_windows_of_speech_only_spread_over_the_file():
    regions = [(5.0 + 12 * k, 15.0 + 12 * k) for k in range(15)]  # 150 s of speech in 10 s turns, 2 s apart
    audio = channel(200.0, regions)
    fake = Fake()
    language, probability, ranked = pipeline._language(fake, [audio], [regions], {})
    assert len(fake.calls) == pipeline.LANGUAGE_WINDOWS == 3
    assert all(len(call) == WINDOW and np.all(call > 0) for call in fake.calls)  # no padding, no silence
    assert fake.calls[0][0] == 5 * SR + 1  # the first window starts at the first speech ...
    assert fake.calls[-1][-1] == int(regions[-1][1] * SR)  # ... the last ends with the last
    middle = fake.calls[1]
    assert regions[5][0] * SR < middle[0] < regions[9][1] * SR  # and one from the middle
    assert (language, probability, ranked) == ("it", 0.8, [("it", pytest.approx(0.8)), ("es", pytest.approx(0.2))])


@pytest.mark.unit
def test_a_short_clip_gives_its_speech_alone_for_the_engine_to_pad():
    regions = [(2.0, 3.5), (4.0, 5.0)]
    audio = channel(10.0, regions)
    fake = Fake()
    pipeline._language(fake, [audio], [regions], {})
    (call,) = fake.calls
    assert np.array_equal(call, np.concatenate([audio[int(a * SR):int(b * SR)] for a, b in regions]))


@pytest.mark.unit
def test_speech_between_two_and_three_windows_long_gives_overlapping_windows_and_the_other_channel_counts():
    left, right = [(0.0, 40.0)], [(10.0, 30.0)]  # 60 s of speech over two channels: two windows
    fake = Fake()
    pipeline._language(fake, [channel(50.0, left), channel(50.0, right) * -1], [left, right], {})
    assert len(fake.calls) == 2 and all(len(c) == WINDOW and np.all(c != 0) for c in fake.calls)
    assert fake.calls[0][0] > 0 and fake.calls[1][-1] < 0  # first from the left, last ends in the right


@pytest.mark.unit
def test_the_windows_distributions_are_pooled_by_their_seconds_of_speech_every_language_ranked():
    regions = [(0.0, 90.0)]
    fake = Fake([[("es", 0.6), ("it", 0.3), ("pt", 0.1)], [("it", 0.9), ("es", 0.1)], [("it", 0.5), ("es", 0.5)]])
    language, probability, ranked = pipeline._language(fake, [channel(90.0, regions)], [regions], {})
    assert language == "it" and probability == pytest.approx((0.3 + 0.9 + 0.5) / 3, abs=1e-4)
    assert [code for code, _ in ranked] == ["it", "es", "pt"]
    assert sum(p for _, p in ranked) == pytest.approx(1.0)


@pytest.mark.unit
def test_no_speech_identifies_nothing_and_a_given_language_calls_no_model():
    fake = Fake()
    assert pipeline._language(fake, [np.zeros(SR * 5, dtype=np.float32)], [[]], {}) == (None, None, [])
    assert pipeline._language(fake, [channel(5.0, [(1.0, 2.0)])], [[(1.0, 2.0)]], {"language": "fr"}) == ("fr", None, [])
    assert fake.calls == []


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Real voices from the corpus cache (infra/setup.sh --test fetches it): the shortest clip of
    English, Italian and Russian, and two files long enough for three windows."""
    from bench import corpus

    directory = tmp_path_factory.mktemp("lid")
    short = corpus.language_clips(directory)
    chosen = [min((c for c in short if c["language"] == lang), key=lambda c: c["duration"]) for lang in ("en", "it", "ru")]
    long = {c["name"]: c for c in corpus.long_language_clips(directory)}
    return chosen + [long["lidlong-fr-armelle-0"], long["lidlong-es-co-july-1"]]


@pytest.mark.system
def test_the_base_model_names_the_language_of_real_voices_short_and_long(clips):
    from pathlib import Path

    from diarist.streams.inference import asr

    base = asr.load("faster-whisper", "base", min(2, os.cpu_count() or 2))
    calls: list[int] = []
    detect = base.detect_language

    def counted(audio):
        calls.append(len(audio))
        return detect(audio)

    base.detect_language = counted  # type: ignore[method-assign]
    for clip in clips:
        calls.clear()
        result = pipeline.run(base, Path(clip["path"]), {"task": "LANGUAGE_IDENTIFICATION", "diarization": False},
                              lambda *event: None)
        assert result["language"] == clip["language"], (clip["name"], result["language_confidences"][:3])
        assert len(calls) == (3 if clip["duration"] > 60 else 1)
        assert set(calls) == ({WINDOW} if clip["duration"] > 60 else {calls[0]}) and calls[0] <= WINDOW
        codes = [c["language"] for c in result["language_confidences"]]
        assert len(codes) == len(set(codes)) > 90  # every language Whisper knows, once each, ranked
