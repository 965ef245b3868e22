"""Media in: probing, and decoding every channel to 16 kHz float32 on disk, a frame at a time.

Decoded audio goes to files that are read back a span at a time, so that memory stays bounded
whatever the duration: an hour of audio is never held whole. The files are read, not
memory-mapped, because mapped pages that were read stay resident in the process (an hour of one
channel is 230 MB) until the kernel needs them back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

SAMPLE_RATE = 16000
VAD_BLOCK = 120 * SAMPLE_RATE  # audio the VAD sees at once: its ONNX batch grows with it
# Finer than faster-whisper's defaults (2 s of silence ends a region): turns in a dialogue are
# often half a second apart, and diarization needs them apart.
VAD = VadOptions(min_silence_duration_ms=500, speech_pad_ms=100)


class MediaError(ValueError):
    """The media cannot be used; the message is meant for the person who sent it."""


def probe(source: Path | BinaryIO) -> dict[str, Any]:
    """Container and first-audio-stream facts, as the MediaInfo schema holds them, from a file or
    a seekable file object (a blob store's reader: PyAV reads the header, not the whole media)."""
    try:
        with av.open(str(source) if isinstance(source, Path) else source) as container:
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


class Channel:
    """One decoded channel in a file of float32 samples; slicing reads that span into memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.samples = path.stat().st_size // 4

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, span: slice) -> np.ndarray:
        start, stop, step = span.indices(self.samples)
        if step != 1:
            raise ValueError("a channel is read in contiguous spans")
        return np.fromfile(self.path, dtype=np.float32, count=max(0, stop - start), offset=start * 4)


def decode_channels(path: Path, workdir: Path) -> list[Channel]:
    """Every channel of the first audio stream as 16 kHz float32, in files under workdir."""
    files: list = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=SAMPLE_RATE)
            channels = len(stream.layout.channels)
            files = [open(workdir / f"channel-{c}.f32", "wb") for c in range(channels)]
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    _append(files, out.to_ndarray())
            for out in resampler.resample(None):
                _append(files, out.to_ndarray())
    except av.error.FFmpegError as exc:
        raise MediaError(f"the media could not be decoded: {exc.strerror or exc}") from None
    finally:
        for file in files:
            file.close()
    return [Channel(Path(file.name)) for file in files]


def _append(files: list, planes: np.ndarray) -> None:
    for file, plane in zip(files, planes.reshape(len(files), -1)):
        file.write(plane.astype(np.float32, copy=False).tobytes())


def find_speech(audio: Channel | np.ndarray) -> list[tuple[float, float]]:
    """Speech regions in seconds (Silero VAD as bundled with faster-whisper), block by block."""
    regions: list[tuple[float, float]] = []
    for offset in range(0, len(audio), VAD_BLOCK):
        block = audio[offset:offset + VAD_BLOCK]
        for r in get_speech_timestamps(block, VAD, sampling_rate=SAMPLE_RATE):
            start, end = (offset + r["start"]) / SAMPLE_RATE, (offset + r["end"]) / SAMPLE_RATE
            if regions and start - regions[-1][1] < 0.1:  # one region cut by a block boundary
                regions[-1] = (regions[-1][0], end)
            else:
                regions.append((start, end))
    return regions


def duplicates(channels: list[Channel]) -> list[int | None]:
    """For each channel, the earlier channel it repeats (the same signal), or None."""
    found: list[int | None] = []
    for i, channel in enumerate(channels):
        found.append(next((j for j in range(i) if found[j] is None and _same(channel, channels[j])), None))
    return found


def _same(a: Channel, b: Channel, block: int = VAD_BLOCK) -> bool:
    if len(a) != len(b):
        return False
    return all(np.max(np.abs(a[i:i + block] - b[i:i + block]), initial=0.0) <= 1e-3
               for i in range(0, len(a), block))
