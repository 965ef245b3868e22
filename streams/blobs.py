"""The blob store: media and results live here, events carry only a reference (claim check).

One protocol, `BlobStore`, and two stores, chosen by `DIARIST_BLOB_URL` (`from_settings`):

- `LocalBlobStore`, a local directory (the embedded default: the URL unset, or `file:///path`).
  Writes go to a temporary file first and are renamed into place once complete and synced, so a
  reader never sees half an object.
- `S3BlobStore`, any S3-compatible store (`s3://bucket/prefix`), through aiobotocore. Writes
  stream into multipart uploads of PART_SIZE parts (never the whole object in memory), computing
  the MD5 on the way, and are aborted on any error or past the size allowed, so that nothing is
  left behind; S3 makes an object visible only once its upload completed.

Keys are relative paths such as `media/<job>` and `results/<job>/attempt-2.json`; deleting a key
also deletes every object below it (`results/<job>` erases every attempt's result).

Reading: `get` for small objects (results), `read_range` and `stream` for media, `open_reader`
for a seekable file object (PyAV probes through it with a few ranged reads), and `local_copy`
for code that needs a file on disk (the inference process decodes from a path): the local store
gives its own file, the S3 store streams the object into a scratch directory and removes it after.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from diarist.infra.settings import Settings

PART_SIZE = 8 * 1024 * 1024  # of a multipart upload; S3 wants at least 5 MiB for every part but the last
CHUNK = 1024 * 1024  # what a streamed read hands over at a time
READ_AHEAD = 1024 * 1024  # fetched at least, per ranged read of a BlobReader
DELETE_BATCH = 1000  # keys in one DeleteObjects request (the S3 maximum)
MEDIA_MISSING = "the media is missing from the blob store"


class TooLarge(ValueError):
    """The object grew past the size the caller allows."""


class BlobMissing(LookupError):
    """No object under the key."""


def check_key(key: str) -> str:
    """The key, when it names an object inside the store: relative, no `..`, no empty parts."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"blob key {key!r} leaves the store")
    return key


class BlobStore(Protocol):
    """Where media and results are kept. Every method is a coroutine but `stream` (an async
    iterator) and `local_copy` (an async context manager)."""

    url: str  # where it is, for logs and /healthz: file:///... or s3://bucket/prefix

    async def write_stream(self, key: str, chunks: AsyncIterable[bytes], max_bytes: int | None = None) -> tuple[str, int]:
        """Stores the chunks under key; (md5 hex, size). TooLarge past max_bytes, leaving nothing."""
        ...

    async def put(self, key: str, data: bytes) -> tuple[str, int]:
        """Stores one small object (a result); (md5 hex, size)."""
        ...

    async def get(self, key: str) -> bytes:
        """The whole object; BlobMissing when there is none."""
        ...

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes start..end-1 (fewer at the end of the object); BlobMissing when there is none."""
        ...

    def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The object (or bytes start..end-1) in chunks of about CHUNK bytes; BlobMissing when there is none."""
        ...

    async def size(self, key: str) -> int:
        """The object's size in bytes; BlobMissing when there is none."""
        ...

    async def remove(self, key: str) -> None:
        """Deletes the object and every object below key/; absent is fine."""
        ...

    def local_copy(self, key: str, scratch: Path) -> contextlib.AbstractAsyncContextManager[Path]:
        """A file on local disk holding the object, for as long as the context lasts (a copy under
        scratch, removed after, unless the store is local); BlobMissing when there is none."""
        ...

    async def open_reader(self, key: str) -> BinaryIO:
        """A seekable binary file object over the object; BlobMissing when there is none. Its reads
        block: use it from a thread (asyncio.to_thread), never on the event loop."""
        ...

    async def close(self) -> None:
        """Releases connections."""
        ...


# -- the local directory ---------------------------------------------------------------------

class LocalBlobStore:
    """A directory. Beside the BlobStore protocol it has the synchronous `path`, `read`, `write`
    and `delete` of a local directory, for the tests and for tools that look at the files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.resolve().as_uri()

    def path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"blob key {key!r} leaves the store")
        return path

    # The protocol.

    async def write_stream(self, key: str, chunks: AsyncIterable[bytes], max_bytes: int | None = None) -> tuple[str, int]:
        with self._writer(key) as sink:
            async for chunk in chunks:
                sink.write(chunk, max_bytes)
        return sink.md5.hexdigest(), sink.size

    async def put(self, key: str, data: bytes) -> tuple[str, int]:
        return await asyncio.to_thread(self.write, key, [data])

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self.read, key)

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        def read() -> bytes:
            with self._open(key) as file:
                file.seek(start)
                return file.read(max(0, end - start))
        return await asyncio.to_thread(read)

    async def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        with self._open(key) as file:
            file.seek(start)
            left = None if end is None else max(0, end - start)
            while left is None or left > 0:
                chunk = await asyncio.to_thread(file.read, CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    async def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            raise BlobMissing(key) from None

    async def remove(self, key: str) -> None:
        await asyncio.to_thread(self.delete, key)

    @contextlib.asynccontextmanager
    async def local_copy(self, key: str, scratch: Path) -> AsyncIterator[Path]:
        path = self.path(key)
        if not path.is_file():
            raise BlobMissing(key)
        yield path  # the store's own file: nothing to copy, nothing to remove

    async def open_reader(self, key: str) -> BinaryIO:
        return self._open(key)

    async def close(self) -> None:
        pass

    # The directory's own.

    def write(self, key: str, chunks: Iterable[bytes], max_bytes: int | None = None) -> tuple[str, int]:
        with self._writer(key) as sink:
            for chunk in chunks:
                sink.write(chunk, max_bytes)
        return sink.md5.hexdigest(), sink.size

    def read(self, key: str) -> bytes:
        with self._open(key) as file:
            return file.read()

    def delete(self, key: str) -> None:
        """Removes the object, or the folder of objects under a key prefix; absent is fine."""
        path = self.path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def _open(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise BlobMissing(key) from None

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

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
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


# -- an S3-compatible store ------------------------------------------------------------------

class S3BlobStore:
    """Objects in a bucket, under a prefix. The client (aiobotocore) is made on first use, in the
    event loop that uses it; credentials come the usual AWS way (AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE and the shared files, instance roles)."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region: str | None = None,
                 addressing_style: str | None = None, part_size: int = PART_SIZE) -> None:
        if part_size < 5 * 1024 * 1024:
            raise ValueError("S3 multipart parts are at least 5 MiB")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or None
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        # An endpoint of one's own usually serves buckets by path, not as host names.
        self.addressing_style = addressing_style or ("path" if self.endpoint_url else "auto")
        self.part_size = part_size
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client: Any = None
        self._exit: contextlib.AsyncExitStack | None = None
        self._lock = threading.Lock()  # guards making the client; the loop never waits on it long

    async def _s3(self) -> Any:
        if self._client is None:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session

            # Checksums only where S3 requires them: many S3-compatible stores refuse the CRC
            # trailers botocore sends by default (TLS, or SigV4's signed payload over plain
            # HTTP, keep the bytes whole; the MD5 of media is computed here anyway).
            config = AioConfig(s3={"addressing_style": self.addressing_style},
                               retries={"mode": "standard", "max_attempts": 5},
                               request_checksum_calculation="when_required",
                               response_checksum_validation="when_required",
                               connect_timeout=10, read_timeout=60)
            stack = contextlib.AsyncExitStack()
            client = await stack.enter_async_context(
                get_session().create_client("s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config))
            with self._lock:
                if self._client is None:
                    self._client, self._exit = client, stack
                    return client
            await stack.aclose()  # another coroutine made one meanwhile
        return self._client

    async def close(self) -> None:
        exit_stack, self._exit, self._client = self._exit, None, None
        if exit_stack is not None:
            await exit_stack.aclose()

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def write_stream(self, key: str, chunks: AsyncIterable[bytes], max_bytes: int | None = None) -> tuple[str, int]:
        target = self._key(key)
        s3 = await self._s3()
        md5, size = hashlib.md5(), 0
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        sending: asyncio.Task[None] | None = None  # one part goes up while the next one fills

        async def send_part(number: int, data: bytes) -> None:
            answer = await s3.upload_part(Bucket=self.bucket, Key=target, UploadId=upload_id, PartNumber=number, Body=data)
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})

        async def start_part(data: bytes) -> None:
            nonlocal sending
            if sending is not None:
                await sending
            sending = asyncio.ensure_future(send_part(len(parts) + 1, data))

        try:
            async for chunk in chunks:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise TooLarge(f"larger than the {max_bytes} bytes allowed")
                md5.update(chunk)
                buffer += chunk
                if len(buffer) >= self.part_size:
                    if upload_id is None:
                        upload_id = (await s3.create_multipart_upload(Bucket=self.bucket, Key=target))["UploadId"]
                    part = bytes(memoryview(buffer)[:self.part_size])
                    del buffer[:self.part_size]
                    await start_part(part)
            if upload_id is None:  # smaller than one part: one request
                await s3.put_object(Bucket=self.bucket, Key=target, Body=bytes(buffer))
            else:
                if buffer:
                    await start_part(bytes(buffer))
                assert sending is not None
                await sending
                await s3.complete_multipart_upload(Bucket=self.bucket, Key=target, UploadId=upload_id,
                                                   MultipartUpload={"Parts": parts})
        except BaseException:
            if sending is not None:
                sending.cancel()
                await asyncio.gather(sending, return_exceptions=True)
            if upload_id is not None:  # also when cancelled: the parts would be kept (and billed) otherwise
                await asyncio.shield(self._abort(target, upload_id))
            raise
        return md5.hexdigest(), size

    async def _abort(self, target: str, upload_id: str) -> None:
        with contextlib.suppress(Exception):
            await (await self._s3()).abort_multipart_upload(Bucket=self.bucket, Key=target, UploadId=upload_id)

    async def put(self, key: str, data: bytes) -> tuple[str, int]:
        await (await self._s3()).put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        return hashlib.md5(data).hexdigest(), len(data)

    async def get(self, key: str) -> bytes:
        async with self._object(key) as body:
            data: bytes = await body.read()
            return data

    async def read_range(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            await self.size(key)  # still BlobMissing when there is none
            return b""
        try:
            async with self._object(key, f"bytes={start}-{end - 1}") as body:
                data: bytes = await body.read()
                return data
        except _InvalidRange:
            return b""  # starts at or past the end

    async def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        if end is not None and end <= start:
            return
        if start == 0 and end is None:
            byte_range = None
        else:
            byte_range = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            async with self._object(key, byte_range) as body:
                async for chunk in body.iter_chunks(CHUNK):
                    yield chunk
        except _InvalidRange:
            return

    async def size(self, key: str) -> int:
        s3 = await self._s3()
        try:
            head = await s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise BlobMissing(key) from None
            raise
        return int(head["ContentLength"])

    async def remove(self, key: str) -> None:
        s3 = await self._s3()
        target = self._key(key)
        await s3.delete_object(Bucket=self.bucket, Key=target)  # S3 answers 204 for an absent key too
        batch: list[dict[str, str]] = []
        async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=target + "/"):
            for item in page.get("Contents", ()):
                batch.append({"Key": item["Key"]})
                if len(batch) == DELETE_BATCH:
                    await self._delete_objects(batch)
                    batch = []
        if batch:
            await self._delete_objects(batch)

    async def _delete_objects(self, batch: list[dict[str, str]]) -> None:
        answer = await (await self._s3()).delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        if errors := answer.get("Errors"):
            raise OSError(f"the blob store kept {len(errors)} objects: {errors[0].get('Key')}: {errors[0].get('Message')}")

    @contextlib.asynccontextmanager
    async def local_copy(self, key: str, scratch: Path) -> AsyncIterator[Path]:
        scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=scratch, prefix="blob-")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as file:
                async for chunk in self.stream(key):
                    file.write(chunk)
            yield path
        finally:
            path.unlink(missing_ok=True)

    async def open_reader(self, key: str) -> BinaryIO:
        size = await self.size(key)
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()

        def fetch(start: int, end: int) -> bytes:
            if threading.get_ident() == loop_thread:
                raise RuntimeError("a blob reader reads through the event loop: use it from another thread")
            return asyncio.run_coroutine_threadsafe(self.read_range(key, start, end), loop).result()

        return cast(BinaryIO, BlobReader(fetch, size))

    @contextlib.asynccontextmanager
    async def _object(self, key: str, byte_range: str | None = None) -> AsyncIterator[Any]:
        s3 = await self._s3()
        args = {"Bucket": self.bucket, "Key": self._key(key)}
        if byte_range:
            args["Range"] = byte_range
        try:
            answer = await s3.get_object(**args)
        except Exception as exc:
            code = _code(exc)
            if code in ("404", "NoSuchKey", "NotFound"):
                raise BlobMissing(key) from None
            if code in ("416", "InvalidRange"):
                raise _InvalidRange() from None
            raise
        async with answer["Body"] as body:
            yield body


class _InvalidRange(Exception):
    pass


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


class BlobReader(io.RawIOBase):
    """A seekable, read-only file object over ranged reads (`fetch(start, end)`), reading ahead
    READ_AHEAD bytes at a time; `requests` counts the ranged reads it made."""

    def __init__(self, fetch: Callable[[int, int], bytes], size: int, read_ahead: int = READ_AHEAD) -> None:
        super().__init__()
        self._fetch = fetch
        self._size = size
        self._read_ahead = read_ahead
        self._position = 0
        self._block_start = 0
        self._block = b""
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._position >= self._size or not len(view):
            return 0
        offset = self._position - self._block_start
        if not 0 <= offset < len(self._block):
            end = min(self._size, self._position + max(self._read_ahead, len(view)))
            self._block, self._block_start, offset = self._fetch(self._position, end), self._position, 0
            self.requests += 1
            if not self._block:
                return 0
        count = min(len(view), len(self._block) - offset)
        view[:count] = self._block[offset:offset + count]
        self._position += count
        return count


# -- choosing one ----------------------------------------------------------------------------

def open_store(url: str, local_dir: Path, *, endpoint_url: str | None = None, region: str | None = None,
               addressing_style: str | None = None) -> BlobStore:
    """The store a DIARIST_BLOB_URL names: empty for the local directory local_dir, file:///path
    for another local directory, s3://bucket/prefix for an S3-compatible store."""
    if not url:
        return LocalBlobStore(local_dir)
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path:
        return LocalBlobStore(Path(parts.path))
    if parts.scheme == "s3" and parts.netloc and not parts.query and not parts.fragment:
        return S3BlobStore(parts.netloc, str(PurePosixPath(parts.path or "/")).strip("/"), endpoint_url=endpoint_url,
                           region=region, addressing_style=addressing_style)
    raise ValueError(f"DIARIST_BLOB_URL {url!r} is neither s3://bucket[/prefix] nor file:///path")


def from_settings(settings: Settings) -> BlobStore:
    return open_store(settings.blob_url, settings.blob_dir, endpoint_url=settings.s3_endpoint_url or None,
                      region=settings.s3_region or None, addressing_style=settings.s3_addressing_style or None)
