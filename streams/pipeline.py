"""The inference pipeline of one job: probe, decode, find speech, transcribe with word timings.

Plain functions over a loaded model; they run inside the engine process (streams/engine.py) and
report as they go through `emit(kind, data)`.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.vad import VadOptions, get_speech_timestamps

SAMPLE_RATE = 16000
Emit = Callable[[str, dict], None]


class MediaError(ValueError):
    """The media cannot be used; the message is meant for the person who sent it."""


def probe(path: Path) -> dict[str, Any]:
    """Container and first-audio-stream facts, as the MediaInfo schema holds them."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError("the file holds no audio stream")
            stream = container.streams.audio[0]
            if container.duration is not None:
                duration = container.duration / av.time_base
            elif stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = 0.0
            return {
                "format": container.format.name,
                "codec": stream.codec_context.name,
                "sample_rate": stream.codec_context.sample_rate or 0,
                "channels": stream.codec_context.channels or 0,
                "bit_rate": stream.codec_context.bit_rate or container.bit_rate or None,
                "duration": float(duration),
            }
    except av.error.FFmpegError as exc:
        raise MediaError(f"the media could not be read: {exc.strerror or exc}") from None


def decode(path: Path) -> np.ndarray:
    """The first audio stream as 16 kHz mono float32."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    pieces: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        raise MediaError(f"the media could not be decoded: {exc.strerror or exc}") from None
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(pieces).astype(np.float32) / 32768.0


def find_speech(audio: np.ndarray) -> list[tuple[float, float]]:
    """Speech regions in seconds (Silero VAD, as bundled with faster-whisper)."""
    regions = get_speech_timestamps(audio, VadOptions(), sampling_rate=SAMPLE_RATE)
    return [(r["start"] / SAMPLE_RATE, r["end"] / SAMPLE_RATE) for r in regions]


def transcribe(model: WhisperModel, path: Path, options: dict[str, Any], emit: Emit) -> dict[str, Any]:
    """Runs the whole pipeline and returns the result document."""
    media = probe(path)
    audio = decode(path)
    duration = len(audio) / SAMPLE_RATE
    speech = find_speech(audio)
    speech_seconds = sum(end - start for start, end in speech)
    # One speaker until diarization by speaker embeddings exists; none when nobody speaks.
    speakers = 1 if speech else 0
    emit("diarized", {"media": media, "speakers": speakers, "speech_seconds": round(speech_seconds, 3)})

    language = options.get("language")
    if not model.model.is_multilingual:
        language = "en"
    segments, info = model.transcribe(audio, language=language, beam_size=5, word_timestamps=True,
                                      vad_filter=True, condition_on_previous_text=False)
    out = []
    for segment in segments:
        out.append({
            "speaker": 0,
            "start": round(float(segment.start), 3),
            "end": round(float(segment.end), 3),
            "text": segment.text.strip(),
            "words": [{"word": w.word.strip(), "start": round(float(w.start), 3), "end": round(float(w.end), 3),
                       "confidence": round(float(w.probability), 3)} for w in segment.words or []],
        })
        if duration:
            emit("progress", {"percent": round(min(99.0, 100.0 * float(segment.end) / duration), 1)})
    return {
        "language": info.language,
        "language_probability": round(info.language_probability, 4),
        "duration": round(duration, 3),
        "speakers": speakers,
        "segments": out,
    }
