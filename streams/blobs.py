"""The blob store: media and results live here, events carry only a reference (claim check).

A local directory by default. Writes go to a temporary file first and are renamed into place
once complete and synced, so a reader never sees half an object.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterable, Iterable
from pathlib import Path


class TooLarge(ValueError):
    """The object grew past the size the caller allows."""


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"blob key {key!r} leaves the store")
        return path

    async def write_stream(self, key: str, chunks: AsyncIterable[bytes], max_bytes: int) -> tuple[str, int]:
        """Stores the chunks under key; returns (md5 hex, size). Raises TooLarge past max_bytes."""
        with self._writer(key) as sink:
            async for chunk in chunks:
                sink.write(chunk, max_bytes)
        return sink.md5.hexdigest(), sink.size

    def write(self, key: str, chunks: Iterable[bytes], max_bytes: int | None = None) -> tuple[str, int]:
        with self._writer(key) as sink:
            for chunk in chunks:
                sink.write(chunk, max_bytes)
        return sink.md5.hexdigest(), sink.size

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def delete(self, key: str) -> None:
        """Removes the object, or the folder of objects under a key prefix; absent is fine."""
        path = self.path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def _writer(self, key: str) -> _Sink:
        return _Sink(self.path(key))


class _Sink:
    def __init__(self, target: Path) -> None:
        self.target = target
        self.md5 = hashlib.md5()
        self.size = 0

    def __enter__(self) -> _Sink:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.target.parent, prefix=".part-")
        self.tmp = Path(tmp)
        self.file = os.fdopen(fd, "wb")
        return self

    def write(self, chunk: bytes, max_bytes: int | None) -> None:
        self.size += len(chunk)
        if max_bytes is not None and self.size > max_bytes:
            raise TooLarge(f"larger than the {max_bytes} bytes allowed")
        self.md5.update(chunk)
        self.file.write(chunk)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.file.flush()
                os.fsync(self.file.fileno())
        finally:
            self.file.close()
        if exc_type is None:
            os.replace(self.tmp, self.target)
        else:
            self.tmp.unlink(missing_ok=True)
