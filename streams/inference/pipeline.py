"""The inference pipeline of one job: probe, decode, find speech, diarize, identify the
language, transcribe with word timings; channel by channel and chunk by chunk.

Plain functions over a loaded transcriber; they run inside the engine process
(streams/engine.py) and report as they go through `emit(kind, data)`.
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from diarist.streams.inference import asr
from diarist.streams.inference.asr import Languages, Region, Transcriber
from diarist.streams.inference.diarization import SpeakerBounds, Turn, diarize, speaker_at
from diarist.streams.inference.media import (
    SAMPLE_RATE,
    Channel,
    MediaError,
    decode_channels,
    duplicates,
    find_speech,
    probe,
)

__all__ = ["MediaError", "OptionError", "run"]

Emit = Callable[[str, dict], None]
CHUNK_SECONDS = 300.0  # audio given to the engine at once: bounds memory, whatever the duration
CHUNK_PAD = 1.0
# Windows of speech language identification pools, at most, spread over the file. With
# faster-whisper on the CPU a window costs one decoder step, as transcription reuses its encoding;
# otherwise one encoder pass (about 0.65 s with base on 2 cores).
LANGUAGE_WINDOWS = 3


class OptionError(ValueError):
    """The job asks for something this engine cannot do; the message says what."""


def run(transcriber: Transcriber, path: Path, options: dict[str, Any], emit: Emit) -> dict[str, Any]:
    """Runs the whole pipeline and returns the result document; before it, reports the seconds
    each stage took as `emit("timings", {stage: seconds, ..., "total", "media_seconds"})`."""
    timings: dict[str, float] = {}
    started = lap = time.perf_counter()

    def timed(stage: str) -> None:
        nonlocal lap
        now = time.perf_counter()
        timings[stage] = round(now - lap, 4)
        lap = now

    media = probe(path)
    with tempfile.TemporaryDirectory(prefix="diarist-audio-") as work:
        channels = decode_channels(path, Path(work))
        repeats = duplicates(channels)
        timed("decode")
        regions = [find_speech(audio) if repeats[c] is None else [] for c, audio in enumerate(channels)]
        timed("vad")
        turns = _speaker_turns(channels, regions, repeats, options)
        timed("diarization")
        infos = [_channel_info(c, audio, regions[c], repeats[c]) for c, audio in enumerate(channels)]
        speakers = len({(c, t.speaker) for c, channel_turns in enumerate(turns) for t in channel_turns})
        speech = sum(info["speech"] for info in infos if info["redundant_of"] is None)
        emit("diarized", {"media": media, "speakers": speakers, "speech_seconds": round(speech, 3),
                          "channels": infos})

        language, probability, languages = _language(transcriber, channels, regions, options)
        timed("language")
        result = {"task": options.get("task") or "TRANSCRIPTION", "language": language,
                  "language_probability": probability,
                  "language_confidences": [{"language": code, "confidence": round(float(p), 4)} for code, p in languages],
                  "duration": round(max((len(a) for a in channels), default=0) / SAMPLE_RATE, 3),
                  "speakers": speakers, "channels": infos, "segments": []}
        if result["task"] != "LANGUAGE_IDENTIFICATION":
            result["segments"] = _transcribe(transcriber, channels, regions, turns, language,
                                             options.get("hints") or [], emit,
                                             options.get("batch_size") or asr.DEFAULT_BATCH_SIZE)
            timed("transcription")
        emit("timings", {**timings, "total": round(time.perf_counter() - started, 4),
                         "media_seconds": result["duration"]})
        return result


def _speaker_turns(channels: list[Channel], regions: list[list[Region]],
                   repeats: list[int | None], options: dict[str, Any]) -> list[list[Turn]]:
    """Speaker turns per channel, speakers numbered across channels (a voice on two channels
    counts twice: channels are separate recordings)."""
    bounds = SpeakerBounds(options.get("speakers_count"), options.get("min_speakers"),
                           options.get("max_speakers"), options.get("clustering_threshold") or SpeakerBounds.threshold)
    out: list[list[Turn]] = []
    first_free = 0
    for c, audio in enumerate(channels):
        if repeats[c] is not None or not regions[c]:
            out.append([])
            continue
        if options.get("diarization", True):
            turns = diarize(audio, regions[c], bounds)
        else:
            turns = [Turn(start, end, 0) for start, end in regions[c]]
        turns = [Turn(t.start, t.end, t.speaker + first_free) for t in turns]
        first_free = max(t.speaker for t in turns) + 1
        out.append(turns)
    return out


def _channel_info(channel: int, audio: Channel, regions: list[tuple[float, float]],
                  repeat_of: int | None) -> dict[str, Any]:
    duration = len(audio) / SAMPLE_RATE
    speech = sum(end - start for start, end in regions)
    return {"channel": channel, "duration": round(duration, 3), "speech": round(speech, 3),
            "silence": round(max(0.0, duration - speech), 3), "redundant_of": repeat_of}


def _language(transcriber: Transcriber, channels: list[Channel], regions: list[list[Region]],
              options: dict[str, Any]) -> tuple[str | None, float | None, list[tuple[str, float]]]:
    """The job's language: as asked, or identified on up to LANGUAGE_WINDOWS windows of speech
    spread over the whole file, their distributions pooled (every language, ranked). A window
    holds speech only; one shorter than 30 s is padded by the engine as Whisper was trained:
    repeating it to fill the window was measured worse on short speech (docs/accuracy.md)."""
    if options.get("language"):
        return options["language"], None, []
    if not transcriber.multilingual:
        if options.get("task") == "LANGUAGE_IDENTIFICATION":
            raise OptionError("language identification needs a multilingual model, such as base")
        return "en", None, []
    windows = language_windows(channels, regions, LANGUAGE_WINDOWS)
    if not windows:
        return None, None, []
    ranked = pooled([transcriber.detect_language(w)[2] for w in windows], [len(w) for w in windows])
    return ranked[0][0], round(ranked[0][1], 4), ranked


def language_windows(channels: list[Channel], regions: list[list[Region]], count: int) -> list[np.ndarray]:
    """Up to `count` of the windows that batched transcription decodes (asr.clips: VAD speech
    only, at most 30 s each), spread evenly from the first to the last, with their samples
    exactly as the engine is given them: faster-whisper then encodes each of them once
    (streams/inference/encoder_reuse.py)."""
    groups = [asr.windows(samples, speech) for _, _, samples, speech in _chunked(channels, regions)]
    total = sum(len(chunk) for chunk in groups)
    n = min(count, total)
    wanted = sorted({round(k * (total - 1) / (n - 1)) for k in range(n)}) if n > 1 else list(range(n))
    out, first = [], 0
    for chunk, (_, _, samples, _) in zip(groups, _chunked(channels, regions)):
        if mine := [i - first for i in wanted if first <= i < first + len(chunk)]:
            spliced, spans = asr.clips(samples, chunk)
            out += [asr.clip_samples(spliced, spans[i]) for i in mine]
        first += len(chunk)
    return out


def pooled(distributions: list[Languages], weights: list[float]) -> Languages:
    """Every language's probability over the windows, ranked: the mean of their distributions
    weighted by each window's speech. A log-probability sum scored the same (docs/accuracy.md);
    the mean lets one odd window (music, another voice) pull the answer less than a product would."""
    total: dict[str, float] = {}
    for ranked, weight in zip(distributions, weights):
        for code, p in ranked:
            total[code] = total.get(code, 0.0) + weight * float(p)
    norm = sum(weights)
    return sorted(((code, p / norm) for code, p in total.items()), key=lambda item: item[1], reverse=True)


def _transcribe(transcriber: Transcriber, channels: list[Channel], regions: list[list[Region]],
                turns: list[list[Turn]], language: str | None, hints: list[str], emit: Emit,
                batch_size: int = 1) -> list[dict]:
    """Chunk by chunk; with batch_size > 1 the engine decodes the VAD's speech regions of each
    chunk (given to it, so that it runs no VAD of its own) in batches of 30 s windows.
    Progress is the share of the audio (of the channels with speech) behind the last segment."""
    with_speech = [c for c in range(len(channels)) if regions[c]]
    before = {c: sum(len(channels[b]) for b in with_speech if b < c) / SAMPLE_RATE for c in with_speech}
    total = sum(len(channels[c]) for c in with_speech) / SAMPLE_RATE or 1.0
    segments: list[dict] = []
    for c, start, samples, speech in _chunked(channels, regions):
        for segment in transcriber.transcribe(samples, language, hints, batch_size, speech):
            shifted = _shifted(segment, start)
            segments += _split_by_speaker(shifted, turns[c], c)
            emit("progress", {"percent": round(min(99.0, 100.0 * (before[c] + shifted["end"]) / total), 1)})
    return sorted(segments, key=lambda s: (s["start"], s["channel"]))


def _chunked(channels: list[Channel], regions: list[list[Region]]) -> Iterator[tuple[int, float, np.ndarray, list[Region]]]:
    """What the engine is given at once, channel by channel (those with speech): (channel, the
    chunk's start in seconds, its samples, its speech regions in seconds from that start)."""
    for c, audio in enumerate(channels):
        for start, end in _chunks(regions[c], len(audio) / SAMPLE_RATE) if regions[c] else []:
            speech = [(max(a, start) - start, min(b, end) - start) for a, b in regions[c] if b > start and a < end]
            yield c, start, audio[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)], speech


def _chunks(regions: list[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """Spans of at most CHUNK_SECONDS covering the regions, cut between regions where possible,
    each with up to CHUNK_PAD of the silence around it (the engine's own VAD wants an edge)."""
    chunks: list[tuple[float, float]] = []
    for start, end in regions:
        while end - start > CHUNK_SECONDS:  # one region longer than a chunk: cut it
            chunks.append((start, start + CHUNK_SECONDS))
            start += CHUNK_SECONDS
        if chunks and end - chunks[-1][0] <= CHUNK_SECONDS:
            chunks[-1] = (chunks[-1][0], end)
        else:
            chunks.append((start, end))
    padded = []
    for i, (start, end) in enumerate(chunks):
        low = (chunks[i - 1][1] + start) / 2 if i else 0.0  # never into a neighbour's half of the gap
        high = (end + chunks[i + 1][0]) / 2 if i + 1 < len(chunks) else duration
        padded.append((max(start - CHUNK_PAD, low), min(end + CHUNK_PAD, high)))
    return padded


def _shifted(segment: dict, offset: float) -> dict:
    def move(t: float) -> float:
        return round(t + offset, 3)

    return {**segment, "start": move(segment["start"]), "end": move(segment["end"]),
            "words": [{**w, "start": move(w["start"]), "end": move(w["end"])} for w in segment["words"]]}


def _split_by_speaker(segment: dict, turns: list[Turn], channel: int) -> list[dict]:
    """The segment cut where the speaker changes; each word goes to the turn that covers it."""
    if not segment["words"]:
        return [{"channel": channel, "speaker": speaker_at(turns, segment["start"], segment["end"]), **segment}]
    pieces: list[dict] = []
    for word in segment["words"]:
        speaker = speaker_at(turns, word["start"], word["end"])
        if pieces and pieces[-1]["speaker"] == speaker:
            pieces[-1]["words"].append(word)
        else:
            pieces.append({"channel": channel, "speaker": speaker, "words": [word]})
    return [{"channel": channel, "speaker": p["speaker"], "start": p["words"][0]["start"],
             "end": p["words"][-1]["end"], "text": "".join(w["spaced"] for w in p["words"]).strip(),
             "words": [{k: v for k, v in w.items() if k != "spaced"} for w in p["words"]]} for p in pieces]
