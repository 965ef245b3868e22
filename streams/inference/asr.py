"""The two ASR engines behind one interface: faster-whisper (CTranslate2) and openai-whisper (torch).

Both run the same Whisper weights (streams/models.py, streams/whisper_checkpoint.py) and give
segments with word timings in the same shape.

Both are called without Whisper's no-speech gate (no_speech_threshold=None): the pipeline's own
VAD has already chosen what is speech, and the gate drops whole 30 s windows of real but unusual
speech (a four-voice French dialogue gave no text at all with it). Each window is conditioned on
the text before it, as the engines do by default: chunks of at most five minutes keep a runaway
repetition short, and without it tiny.en lost two points of WER on the accuracy corpus.

Batched decoding (`batch_size` > 1, faster-whisper only): the speech regions the pipeline's VAD
found are joined into windows of at most 30 s, and `batch_size` windows go through
faster-whisper's BatchedInferencePipeline at once. The windows are then decoded independently
(not conditioned on the text before them): docs/accuracy.md measures what that does to WER and
speed. openai-whisper has no batched decoder: it takes the option and decodes one window after
the other.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from diarist.streams.inference.media import SAMPLE_RATE, find_speech
from diarist.streams.jobs.types import ENGINES

Segment = dict[str, Any]
Languages = list[tuple[str, float]]
Region = tuple[float, float]
DEFAULT_BATCH_SIZE = 2  # windows decoded at once unless the job says otherwise (docs/models.md: memory)
WINDOW_SECONDS = 30.0  # Whisper's input


class Transcriber(Protocol):
    multilingual: bool
    device: str

    def detect_language(self, audio: np.ndarray) -> tuple[str, float, Languages]: ...

    def transcribe(self, audio: np.ndarray, language: str | None, hints: list[str], batch_size: int = 1,
                   speech: list[Region] | None = None) -> Iterator[Segment]:
        """Segments with word timings, in seconds from the start of `audio`. `speech`: the
        regions of it (seconds) that the caller's VAD found, used when decoding in batches."""
        ...


def cuda_available() -> bool:
    import ctranslate2

    return ctranslate2.get_cuda_device_count() > 0


def load(engine: str, model_name: str, threads: int) -> Transcriber:
    if engine == "faster-whisper":
        return FasterWhisper(model_name, threads)
    if engine == "openai-whisper":
        return OpenAIWhisper(model_name, threads)
    raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")


def _segment(start: float, end: float, text: str, words: list[tuple[str, float, float, float]]) -> Segment:
    # "spaced" keeps the word as the model wrote it, with its leading space or none ("c" "'est"),
    # so that text cut at a speaker change joins back as the model meant it.
    return {"start": round(float(start), 3), "end": round(float(end), 3), "text": text.strip(),
            "words": [{"word": w.strip(), "spaced": w, "start": round(float(s), 3), "end": round(float(e), 3),
                       "confidence": round(float(p), 3)} for w, s, e, p in words]}


def windows(audio: np.ndarray, speech: list[Region], longest: float = WINDOW_SECONDS) -> list[list[Region]]:
    """The speech regions grouped into windows of at most `longest` seconds of speech each (the
    silence between regions is left out, as faster-whisper's own batched VAD path does). A
    region longer than that is cut in the second half of each window, in the middle of its
    latest quietest 0.2 s, so that a cut falls in a pause."""
    duration = len(audio) / SAMPLE_RATE
    pieces: list[Region] = []
    for start, end in speech:
        start, end = max(0.0, start), min(end, duration)
        while end - start > longest:
            cut = _quietest(audio, start + longest / 2, start + longest)
            pieces.append((start, cut))
            start = cut
        if end > start:
            pieces.append((start, end))
    out: list[list[Region]] = []
    filled = 0.0
    for start, end in pieces:
        if out and filled + end - start <= longest:
            out[-1].append((start, end))
            filled += end - start
        else:
            out.append([(start, end)])
            filled = end - start
    return out


class Spliced:
    """Speech pieces of a recording laid end to end, and the way back to the recording's times."""

    def __init__(self, audio: np.ndarray, pieces: list[Region]) -> None:
        bounds = [(int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)) for start, end in pieces]
        self.audio = np.concatenate([audio[a:b] for a, b in bounds] or [np.zeros(0)]).astype(np.float32, copy=False)
        self.original = [a / SAMPLE_RATE for a, _ in bounds]
        self.at = list(np.cumsum([0] + [b - a for a, b in bounds])[:-1] / SAMPLE_RATE)  # where each piece starts here
        self.length = [(b - a) / SAMPLE_RATE for a, b in bounds]

    def time(self, t: float, end: bool = False) -> float:
        """A time of the spliced audio in the recording; an end that falls on a joint stays in
        the piece before it."""
        i = max(0, (bisect_left(self.at, t) if end else bisect_right(self.at, t)) - 1)
        return self.original[i] + min(max(t - self.at[i], 0.0), self.length[i])


def clips(audio: np.ndarray, groups: list[list[Region]]) -> tuple[Spliced, list[Region]]:
    """The windows (`windows`' groups) as batched decoding gives them to the engine: the speech
    pieces of every window laid end to end, and each window's (start, end) in that spliced audio."""
    spliced = Spliced(audio, [piece for group in groups for piece in group])
    spans, first = [], 0
    for group in groups:
        last = first + len(group) - 1
        spans.append((spliced.at[first], spliced.at[last] + spliced.length[last]))
        first = last + 1
    return spliced, spans


def clip_samples(spliced: Spliced, clip: Region) -> np.ndarray:
    """A window's samples, cut as faster-whisper cuts a clip (int(seconds * rate)), so that
    language identification and decoding give the engine the very same window."""
    return spliced.audio[int(clip[0] * SAMPLE_RATE):int(clip[1] * SAMPLE_RATE)]


def _quietest(audio: np.ndarray, low: float, high: float, frame: float = 0.02, pause: float = 0.2) -> float:
    """The middle of the latest `pause` seconds between `low` and `high` about as quiet as the
    quietest: a pause between words, not the silent closure of a stop consonant inside one."""
    size, per = int(frame * SAMPLE_RATE), max(1, round(pause / frame))
    first = int(low * SAMPLE_RATE)
    span = np.asarray(audio[first:int(high * SAMPLE_RATE)], dtype=np.float32)
    n = len(span) // size
    if n < per:
        return high
    energy = np.square(span[:n * size]).reshape(n, size).sum(axis=1)
    sums = np.convolve(energy, np.ones(per), mode="valid")  # energy of each run of `per` frames
    quiet = np.flatnonzero(sums <= 2 * sums.min() + 1e-6)
    return (first + (int(quiet[-1]) + per / 2) * size) / SAMPLE_RATE


class FasterWhisper:
    def __init__(self, model_name: str, threads: int) -> None:
        from faster_whisper import BatchedInferencePipeline

        from diarist.streams.inference.encoder_reuse import EncodeOnceModel
        from diarist.streams.inference.weights import model_dir

        self.device, compute_type = ("cuda", "float16") if cuda_available() else ("cpu", "int8")
        self.model = EncodeOnceModel(str(model_dir(model_name)), device=self.device, compute_type=compute_type,
                                     cpu_threads=threads, local_files_only=True)
        self.multilingual = self.model.model.is_multilingual
        self.batched = BatchedInferencePipeline(self.model)

    def detect_language(self, audio: np.ndarray) -> tuple[str, float, Languages]:
        """The window's features as batched decoding computes them: when it decodes this window
        later, the encoder's output is reused (streams/inference/encoder_reuse.py)."""
        from faster_whisper.audio import pad_or_trim

        features = pad_or_trim(self.model.feature_extractor(np.asarray(audio, dtype=np.float32))[..., :-1])
        encoded = self.model.encode(features)
        self.model.keep(features, encoded)
        ranked = [(token[2:-2], float(p)) for token, p in self.model.model.detect_language(encoded)[0]]
        return ranked[0][0], ranked[0][1], ranked

    def transcribe(self, audio: np.ndarray, language: str | None, hints: list[str], batch_size: int = 1,
                   speech: list[Region] | None = None) -> Iterator[Segment]:
        if batch_size > 1:
            spliced, spans = clips(audio, windows(audio, find_speech(audio) if speech is None else speech))
            if not spans:
                return  # no speech
            if len(spans) > 1:
                yield from self._batched(spliced, spans, language, hints, batch_size)
                return
        # Sequential, or speech that fits in one window: nothing to batch.
        segments, _ = self.model.transcribe(
            audio, language=language, beam_size=5, word_timestamps=True, vad_filter=True,
            no_speech_threshold=None, hotwords=" ".join(hints) or None)
        for s in segments:
            yield _segment(s.start, s.end, s.text, [(w.word, w.start, w.end, w.probability) for w in s.words or []])

    def _batched(self, spliced: Spliced, spans: list[Region], language: str | None, hints: list[str],
                 batch_size: int) -> Iterator[Segment]:
        timestamps = [{"start": start, "end": end} for start, end in spans]
        # One segment per window (faster-whisper's batched default): with timestamp tokens the
        # model dropped the first sentence of some windows (docs/models.md).
        batched, _ = self.batched.transcribe(
            spliced.audio, language=language, beam_size=5, word_timestamps=True, batch_size=batch_size,
            clip_timestamps=timestamps, without_timestamps=True, no_speech_threshold=None,
            hotwords=" ".join(hints) or None)
        starts = [clip["start"] for clip in timestamps]
        for b in batched:
            # Times stay inside the segment's own window (word alignment can reach a frame
            # before it, which would map into the previous window's last piece).
            clip = timestamps[max(0, bisect_right(starts, (b.start + b.end) / 2) - 1)]

            def back(t: float, end: bool = False, clip: dict = clip) -> float:
                return spliced.time(min(max(t, clip["start"]), clip["end"]), end)

            yield _segment(back(b.start), back(b.end, True), b.text,
                           [(w.word, back(w.start), back(w.end, True), w.probability) for w in b.words or []])


class OpenAIWhisper:
    def __init__(self, model_name: str, threads: int) -> None:
        import torch

        from diarist.streams.inference.checkpoint import load_model

        torch.set_num_threads(threads)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = load_model(model_name, self.device)
        self.multilingual = self.model.is_multilingual

    def detect_language(self, audio: np.ndarray) -> tuple[str, float, Languages]:
        import whisper

        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(np.asarray(audio, dtype=np.float32)),
                                          self.model.dims.n_mels).to(self.model.device)
        _, probabilities = self.model.detect_language(mel.to(next(self.model.parameters()).dtype))
        ranked = sorted(probabilities.items(), key=lambda item: item[1], reverse=True)
        return ranked[0][0], ranked[0][1], ranked

    def transcribe(self, audio: np.ndarray, language: str | None, hints: list[str], batch_size: int = 1,
                   speech: list[Region] | None = None) -> Iterator[Segment]:
        # No batched decoder in openai-whisper: any batch_size decodes one window after the other.
        result = self.model.transcribe(
            audio, language=language, word_timestamps=True, beam_size=5,
            best_of=5, fp16=self.device == "cuda", no_speech_threshold=None,
            initial_prompt=" ".join(hints) or None)
        for s in result["segments"]:
            yield _segment(s["start"], s["end"], s["text"],
                           [(w["word"], w["start"], w["end"], w["probability"]) for w in s.get("words", [])])
