"""Language identification: windows of speech only (the windows transcription decodes), several for
long speech, pooled confidences; the real base model on real voices of the corpus (bench/corpus.py),
and transcription that does not encode again the windows language identification encoded."""
from __future__ import annotations

import os

import numpy as np
import pytest

from diarist.streams.inference import asr, pipeline

SR = pipeline.SAMPLE_RATE
WINDOW = int(asr.WINDOW_SECONDS * SR)


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
def test_the_windows_are_those_transcription_decodes_and_the_other_channel_counts():
    left, right = [(0.0, 40.0)], [(10.0, 30.0)]  # 60 s of speech over two channels: three windows
    fake = Fake()
    channels = [channel(50.0, left), channel(50.0, right) * -1]
    pipeline._language(fake, channels, [left, right], {})
    assert len(fake.calls) == 3 and all(0 < len(c) <= WINDOW and np.all(c != 0) for c in fake.calls)
    assert fake.calls[0][0] > 0 and fake.calls[-1][-1] < 0  # first from the left, last ends in the right
    spliced, spans = asr.clips(channels[0], asr.windows(channels[0], left))  # the left channel's, as decoding cuts them
    assert [len(c) for c in fake.calls[:2]] == [len(asr.clip_samples(spliced, span)) for span in spans]


@pytest.mark.unit
def test_the_windows_distributions_are_pooled_by_their_seconds_of_speech_every_language_ranked():
    regions = [(0.0, 30.0), (31.0, 61.0), (62.0, 72.0)]  # windows of 30, 30 and 10 s of speech
    fake = Fake([[("es", 0.6), ("it", 0.3), ("pt", 0.1)], [("it", 0.9), ("es", 0.1)], [("it", 0.5), ("es", 0.5)]])
    language, probability, ranked = pipeline._language(fake, [channel(75.0, regions)], [regions], {})
    assert [len(call) / SR for call in fake.calls] == [30, 30, 10]
    assert language == "it" and probability == pytest.approx((0.3 * 30 + 0.9 * 30 + 0.5 * 10) / 70, abs=1e-4)
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
        assert all(call <= WINDOW for call in calls) and (sum(calls) > 1.5 * WINDOW if clip["duration"] > 60 else True)
        codes = [c["language"] for c in result["language_confidences"]]
        assert len(codes) == len(set(codes)) > 90  # every language Whisper knows, once each, ranked


@pytest.mark.system
def test_transcription_does_not_encode_again_the_windows_language_identification_encoded(clips, monkeypatch):
    """faster-whisper on the CPU: the three windows language identification encodes are among those
    batched decoding decodes, which reuses their encoder output; the transcript is the one it
    gives when it encodes them again."""
    from pathlib import Path

    from faster_whisper import WhisperModel

    from diarist.streams.inference.encoder_reuse import EncodeOnceModel

    base = asr.load("faster-whisper", "base", min(2, os.cpu_count() or 2))
    clip = clips[-1]  # 70-120 s of Spanish: more windows than language identification takes
    encoded: list[int] = []
    encode = WhisperModel.encode
    monkeypatch.setattr(WhisperModel, "encode", lambda self, f: encoded.append(1 if f.ndim == 2 else len(f)) or encode(self, f))

    def transcribe() -> dict:
        encoded.clear()
        return pipeline.run(base, Path(clip["path"]), {"diarization": False, "batch_size": 2}, lambda *event: None)

    reused = transcribe()
    with_reuse = sum(encoded)
    monkeypatch.setattr(EncodeOnceModel, "keep", lambda self, features, output: None)
    again = transcribe()
    assert with_reuse > pipeline.LANGUAGE_WINDOWS and sum(encoded) == with_reuse + pipeline.LANGUAGE_WINDOWS
    assert reused["language"] == again["language"] == "es"
    assert [s["text"] for s in reused["segments"]] == [s["text"] for s in again["segments"]]
