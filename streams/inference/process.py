"""An inference process: a child process that holds an ASR engine with its loaded Whisper model and runs jobs.

Jobs run in a process of their own, not a thread, so that a stop takes effect at once (the
process is killed and a fresh one loads the model again) and a crash in native code fails one
job instead of the worker. The asyncio side never blocks: it polls the pipe from a thread.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

OnMessage = Callable[[str, dict], Awaitable[None]]


class JobFailed(Exception):
    """The pipeline could not finish the job; str() says why, for a person."""


class Cancelled(Exception):
    pass


def _die_with_parent() -> None:
    """A worker killed outright must not leave its engine running a job nobody waits for."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the engine ends at its next write to the closed pipe


def bound_malloc() -> None:
    """glibc's malloc raises its mmap threshold after each large free, so the next large blocks
    (a chunk's features, some 10-30 MB each) come from the heap and fragment it: an engine's
    resident memory grew by about 300 MB over an hour of audio. A fixed threshold sends them to
    mmap, returned on free, and two arenas keep the engine's threads from multiplying heaps."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD: fixed, 4 MiB
        libc.mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass  # not glibc


def _scratch(pid: int) -> Path:
    """The engine process's own temporary directory. A killed engine cannot clean up after its
    job (decoded audio: 230 MB an hour a channel), so the InferenceProcess that killed it removes this."""
    return Path(tempfile.gettempdir()) / f"diarist-engine-{pid}"


def _serve(conn: Connection, engine: str, model_name: str, threads: int) -> None:
    _die_with_parent()
    bound_malloc()
    scratch = _scratch(os.getpid())
    scratch.mkdir(exist_ok=True)
    tempfile.tempdir = str(scratch)  # every temporary file of this process goes there

    from diarist.streams.inference import asr, diarization, pipeline

    transcriber = asr.load(engine, model_name, threads)
    diarization.load_encoder()
    conn.send(("ready", {"device": transcriber.device}))
    while True:
        try:
            path, options = conn.recv()
        except EOFError:
            shutil.rmtree(scratch, ignore_errors=True)
            return
        try:
            result = pipeline.run(transcriber, Path(path), options, lambda kind, data: conn.send((kind, data)))
            conn.send(("done", result))
        except (pipeline.MediaError, pipeline.OptionError) as exc:
            conn.send(("failed", {"reason": str(exc)}))
        except Exception as exc:  # a person reads this: say what broke, not where
            conn.send(("failed", {"reason": f"transcription failed: {type(exc).__name__}: {exc}"}))


class InferenceProcess:
    def __init__(self, engine: str, model_name: str, threads: int) -> None:
        self.engine = engine
        self.model_name = model_name
        self.threads = threads
        self.device = "cpu"
        self.last_used = time.monotonic()
        self._running = False
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._starting = asyncio.Lock()  # warm-up and the first job may both ask for the process

    @property
    def busy(self) -> bool:
        return self._running

    @property
    def loaded(self) -> bool:
        return self._process is not None and self._process.is_alive()

    async def start(self) -> None:
        async with self._starting:
            if self.loaded:
                return
            context = multiprocessing.get_context("spawn")
            parent, child = context.Pipe()
            self._process = context.Process(target=_serve, args=(child, self.engine, self.model_name, self.threads),
                                            name=f"diarist-engine-{self.engine}-{self.model_name}", daemon=True)
            self._process.start()
            child.close()
            self._conn = parent
            _, data = await self._receive()
            self.device = data["device"]

    async def run(self, media: Path, options: dict[str, Any], on_message: OnMessage,
                  cancelled: asyncio.Event) -> dict:
        """The result document; raises JobFailed, or Cancelled once `cancelled` is set."""
        self._running = True  # from before the start: an idle engine being started is not idle
        try:
            await self.start()
            self._conn.send((str(media), options))
            return await self._follow(on_message, cancelled)
        finally:
            self._running = False
            self.last_used = time.monotonic()

    async def _follow(self, on_message: OnMessage, cancelled: asyncio.Event) -> dict:
        while True:
            receiving = asyncio.ensure_future(self._receive())
            stopping = asyncio.ensure_future(cancelled.wait())
            done, _ = await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stopping in done:
                self.kill()
                await asyncio.gather(receiving, return_exceptions=True)
                raise Cancelled()
            stopping.cancel()
            kind, data = receiving.result()
            if kind == "done":
                return data
            if kind == "failed":
                raise JobFailed(data["reason"])
            await on_message(kind, data)

    async def _receive(self) -> tuple[str, dict]:
        conn, process = self._conn, self._process
        while True:
            ready = await asyncio.to_thread(conn.poll, 0.1)
            if ready:
                try:
                    return conn.recv()
                except EOFError:
                    pass
            elif process.is_alive():
                continue
            raise JobFailed(f"the inference process died (exit code {process.exitcode})")

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
            self._conn.close()
            shutil.rmtree(_scratch(self._process.pid), ignore_errors=True)
        self._process = self._conn = None

