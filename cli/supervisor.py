"""Keeps the processes of `diarist up` running: a child that dies is restarted, the others serve on.

Each child is a name and a function that starts it. The supervisor starts them in order, polls
them, and restarts one that ended, after a backoff that doubles from `first_delay` up to
`max_delay` and starts over once the child ran `stable_after` seconds. It prints one line per
death and per restart, and keeps the children's states in a small JSON file that the edge's
/healthz reads. Only a stop (SIGINT, SIGTERM, SIGHUP) ends it: then it stops the children in
reverse order and removes the file.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Protocol


class Process(Protocol):
    """A started child, as the supervisor sees it (KafkaBroker is one, Subprocess wraps Popen)."""

    @property
    def pid(self) -> int | None: ...

    def poll(self) -> int | None:
        """None while it runs; its exit code once it ended."""
        ...

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, SIGKILL after `timeout`; once it ended by itself, only reaps it."""
        ...


class Subprocess:
    """A child process in its own process group: a Ctrl-C in the terminal reaches the
    supervisor alone, which then stops the children in order."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self._popen = subprocess.Popen(list(args), env=env, process_group=0)

    @property
    def pid(self) -> int | None:
        return self._popen.pid

    def poll(self) -> int | None:
        return self._popen.poll()

    def stop(self, timeout: float = 30.0) -> None:
        if self._popen.poll() is None:
            self._popen.terminate()
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
        self._popen.wait()


@dataclass(frozen=True)
class Child:
    name: str  # in messages and in the state file: "inference worker"
    start: Callable[[], Process]


@dataclass
class _Slot:
    child: Child
    process: Process | None = None
    state: str = "starting"  # starting | running | restarting
    restarts: int = 0
    since: str = ""
    started_at: float = 0.0  # time.monotonic() of the last start
    delay: float = 0.0  # the wait before the next restart
    restart_at: float = 0.0


class Stopped(Exception):
    """A stop came while a child was being started."""


class Supervisor:
    def __init__(self, children: Sequence[Child], state_file: Path | None = None, *, first_delay: float = 1.0,
                 max_delay: float = 30.0, stable_after: float = 60.0, interval: float = 0.2,
                 say: Callable[[str], None] = lambda line: print(line, flush=True)) -> None:
        self._slots = [_Slot(child, delay=first_delay) for child in children]
        self.state_file = state_file
        self.first_delay, self.max_delay, self.stable_after = first_delay, max_delay, stable_after
        self.interval = interval
        self._say = say
        self._stopping = False
        self._starting = False

    # -- stopping ---------------------------------------------------------------------------

    def handle_signals(self) -> None:
        """SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal closed) stop everything."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        if self._starting:  # a start may block (the broker waits until it answers): cut it short
            self._starting = False
            raise Stopped()

    def stop(self) -> None:
        """Asks run() to stop everything and return (from any thread)."""
        self._stopping = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    # -- running ----------------------------------------------------------------------------

    def run(self, tick: Callable[[], None] = lambda: None) -> None:
        """Starts the children in order, then restarts any that ends, calling `tick` between
        polls, until a stop; then stops them all. An error of a first start propagates, once
        what had started is stopped."""
        try:
            for slot in self._slots:
                if self._stopping:
                    return
                self._start(slot)
            while not self._stopping:
                self.poll_once()
                tick()
                time.sleep(self.interval)
        except Stopped:
            pass
        finally:
            self._stop_all()

    def poll_once(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            if self._stopping:
                return
            if slot.state == "running":
                assert slot.process is not None
                code = slot.process.poll()
                if code is not None:
                    self._died(slot, code, now)
            elif slot.state == "restarting" and now >= slot.restart_at:
                try:
                    self._start(slot, restart=True)
                except Stopped:
                    raise
                except Exception as exc:  # noqa: BLE001 - whatever stops a restart, try again later
                    self._schedule(slot, time.monotonic(), f"{slot.child.name} did not start ({exc})")
                    continue
                self._say(f"{slot.child.name} restarted (pid {slot.process and slot.process.pid})")

    def _start(self, slot: _Slot, restart: bool = False) -> None:
        self._starting = True
        try:
            process = slot.child.start()
        finally:
            self._starting = False
        if self._stopping:  # the stop came between the start's last step and here
            process.stop()
            raise Stopped()
        slot.process, slot.state, slot.started_at = process, "running", time.monotonic()
        slot.since, slot.restarts = _now(), slot.restarts + restart
        self._write()

    def _died(self, slot: _Slot, code: int, now: float) -> None:
        assert slot.process is not None
        slot.process.stop()  # reaps it; the broker also forgets it
        slot.process = None
        if now - slot.started_at >= self.stable_after:
            slot.delay = self.first_delay
        self._schedule(slot, now, f"{slot.child.name} exited with code {code}")

    def _schedule(self, slot: _Slot, now: float, what: str) -> None:
        slot.state, slot.since, slot.restart_at = "restarting", _now(), now + slot.delay
        self._write()  # before the line: whoever reads the line finds the state file agreeing
        self._say(f"{what}; restarting in {slot.delay:g} s")
        slot.delay = min(slot.delay * 2, self.max_delay)

    def _stop_all(self) -> None:
        for slot in reversed(self._slots):
            if slot.process is not None:
                slot.process.stop()
                slot.process = None
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)

    # -- reporting --------------------------------------------------------------------------

    def states(self) -> dict[str, dict[str, object]]:
        return {slot.child.name: {"state": slot.state, "restarts": slot.restarts, "since": slot.since,
                                  "pid": slot.process.pid if slot.process else None}
                for slot in self._slots}

    def _write(self) -> None:
        """The state file: {"pid": supervisor, "parts": {name: {state, restarts, since, pid}}}."""
        if self.state_file is None:
            return
        tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"pid": os.getpid(), "parts": self.states()}, indent=1) + "\n")
        tmp.replace(self.state_file)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
