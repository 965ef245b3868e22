"""The S3 blob store against a real S3 server (SeaweedFS's `weed mini`): what taking media in and
giving it to PyAV cost in time and memory, for a short and a long file.

    python bench/blobs.py [--short 60] [--long 3600] [--runs 3]

Each case runs in a fresh child process, once to warm up and then --runs times, and reports its
wall time and how much its peak resident memory (VmHWM) grew over the same process just before
the case (imports and the S3 client already made). The media is WAV, 44.1 kHz stereo 16-bit (10.6 MB a minute), noise. Cases:

- upload: `write_stream` of the file in 64 KiB chunks (as an HTTP upload arrives), multipart;
- download: `local_copy` into a scratch directory (what the inference worker does);
- probe via reader: `probe` through `open_reader` (ranged reads of the header; CPqD's check);
- probe via download: `local_copy` then `probe` (the alternative);
- decode via reader: every audio frame decoded by PyAV through `open_reader`;
- decode local: the same from the downloaded file (the time the inference process spends on it).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

RATE, CHANNELS = 44100, 2


def make_wav(path: Path, seconds: int) -> Path:
    block = os.urandom(RATE * CHANNELS * 2)  # one second
    with wave.open(str(path), "wb") as out:
        out.setnchannels(CHANNELS)
        out.setsampwidth(2)
        out.setframerate(RATE)
        for _ in range(seconds):
            out.writeframes(block)
    return path


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


async def case(name: str, media: Path, key: str, scratch: Path) -> dict:
    import av

    from diarist.streams.blobs import S3BlobStore
    from diarist.streams.inference.media import probe

    store = S3BlobStore(os.environ["BENCH_BUCKET"], "bench", endpoint_url=os.environ["BENCH_ENDPOINT"])
    await store.size(key) if name != "upload" else await store.put("bench/warm", b"x")  # client made, connection open
    extra: dict = {}

    def decode(source) -> int:
        frames = 0
        with av.open(source) as container:
            for frame in container.decode(container.streams.audio[0]):
                frames += frame.samples
        return frames

    async def chunks():
        with media.open("rb") as file:
            while chunk := file.read(64 * 1024):
                yield chunk

    base = peak_rss()
    start = time.perf_counter()
    if name == "upload":
        await store.write_stream(key, chunks())
    elif name == "download":
        async with store.local_copy(key, scratch):
            pass
    elif name == "probe via reader":
        reader = await store.open_reader(key)
        with reader:
            await asyncio.to_thread(probe, reader)
        extra = {"requests": reader.requests}
    elif name == "probe via download":
        async with store.local_copy(key, scratch) as path:
            await asyncio.to_thread(probe, path)
    elif name == "decode via reader":
        reader = await store.open_reader(key)
        with reader:
            await asyncio.to_thread(decode, reader)
        extra = {"requests": reader.requests}
    elif name == "decode local":
        async with store.local_copy(key, scratch) as path:
            start = time.perf_counter()  # the decode only
            await asyncio.to_thread(decode, str(path))
    seconds = time.perf_counter() - start
    await store.close()
    return {"seconds": seconds, "rss_growth": peak_rss() - base, **extra}


def child(args: argparse.Namespace) -> None:
    result = asyncio.run(case(args.case, Path(args.media), args.key, Path(args.scratch)))
    print(json.dumps(result))


CASES = ["upload", "download", "probe via reader", "probe via download", "decode via reader", "decode local"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=60)
    parser.add_argument("--long", type=int, default=3600)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--case"), parser.add_argument("--media"), parser.add_argument("--key"), parser.add_argument("--scratch")
    args = parser.parse_args()
    if args.case:
        return child(args)

    from diarist.infra.seaweedfs import SeaweedFS

    with tempfile.TemporaryDirectory(prefix="bench-blobs-") as tmp:
        root = Path(tmp)
        with SeaweedFS(root / "seaweedfs") as server:
            env = {**os.environ, **server.env, "BENCH_BUCKET": server.bucket, "BENCH_ENDPOINT": server.endpoint_url}
            print(f"S3 server: SeaweedFS weed mini at {server.endpoint_url}; {os.cpu_count()} CPUs")
            print(f"{'media':>14} {'case':>20} {'median s':>9} {'min s':>7} {'MB/s':>7} {'peak RSS +MB':>12}  notes")
            for seconds in (args.short, args.long):
                media = make_wav(root / f"{seconds}.wav", seconds)
                size = media.stat().st_size
                key = f"media/{seconds}"
                for name in CASES:
                    runs = []
                    for run in range(args.runs + 1):  # the first is a warm-up, not counted
                        out = subprocess.run([sys.executable, "-P", __file__, "--case", name, "--media", str(media),
                                              "--key", key, "--scratch", str(root / "scratch")],
                                             env=env, capture_output=True, text=True, check=True)
                        if run:
                            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
                    times = [r["seconds"] for r in runs]
                    median = statistics.median(times)
                    rate = size / median / 1e6 if name not in ("probe via reader", "probe via download") else 0
                    notes = f"{runs[0]['requests']} ranged GETs" if "requests" in runs[0] else ""
                    print(f"{seconds:>6} s {size / 1e6:>5.0f} MB {name:>20} {median:>9.3f} {min(times):>7.3f} "
                          f"{rate if rate else float('nan'):>7.0f} {max(r['rss_growth'] for r in runs) / 1e6:>12.1f}  {notes}")
                media.unlink()


if __name__ == "__main__":
    main()
