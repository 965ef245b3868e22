"""The two ASR engines behind one interface: faster-whisper (CTranslate2) and openai-whisper (torch).

Both run the same Whisper weights (streams/models.py, streams/whisper_checkpoint.py) and give
segments with word timings in the same shape.

Both are called without Whisper's no-speech gate (no_speech_threshold=None): the pipeline's own
VAD has already chosen what is speech, and the gate drops whole 30 s windows of real but unusual
speech (a four-voice French dialogue gave no text at all with it). Each window is conditioned on
the text before it, as the engines do by default: chunks of at most five minutes keep a runaway
repetition short, and without it tiny.en lost two points of WER on the accuracy corpus.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from diarist.streams.jobs.types import ENGINES

Segment = dict[str, Any]
Languages = list[tuple[str, float]]


class Transcriber(Protocol):
    multilingual: bool
    device: str

    def detect_language(self, audio: np.ndarray) -> tuple[str, float, Languages]: ...

    def transcribe(self, audio: np.ndarray, language: str | None, hints: list[str]) -> Iterator[Segment]: ...


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


class FasterWhisper:
    def __init__(self, model_name: str, threads: int) -> None:
        from faster_whisper import WhisperModel

        from diarist.streams.inference.weights import model_dir

        self.device, compute_type = ("cuda", "float16") if cuda_available() else ("cpu", "int8")
        self.model = WhisperModel(str(model_dir(model_name)), device=self.device, compute_type=compute_type,
                                  cpu_threads=threads, local_files_only=True)
        self.multilingual = self.model.model.is_multilingual

    def detect_language(self, audio: np.ndarray) -> tuple[str, float, Languages]:
        language, probability, languages = self.model.detect_language(audio)
        return language, probability, languages

    def transcribe(self, audio: np.ndarray, language: str | None, hints: list[str]) -> Iterator[Segment]:
        segments, _ = self.model.transcribe(
            audio, language=language, beam_size=5, word_timestamps=True, vad_filter=True,
            no_speech_threshold=None, hotwords=" ".join(hints) or None)
        for s in segments:
            yield _segment(s.start, s.end, s.text, [(w.word, w.start, w.end, w.probability) for w in s.words or []])


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

    def transcribe(self, audio: np.ndarray, language: str | None, hints: list[str]) -> Iterator[Segment]:
        result = self.model.transcribe(
            audio, language=language, word_timestamps=True, beam_size=5,
            best_of=5, fp16=self.device == "cuda", no_speech_threshold=None,
            initial_prompt=" ".join(hints) or None)
        for s in result["segments"]:
            yield _segment(s["start"], s["end"], s["text"],
                           [(w["word"], w["start"], w["end"], w["probability"]) for w in s.get("words", [])])
