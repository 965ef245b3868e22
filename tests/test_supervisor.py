"""The supervisor of `diarist up` with plain child processes: restarts, backoff, its state file,
a stop. (tests/test_cli.py runs it for real, with the broker and the workers.)"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from diarist.api.health import _supervised_parts
from diarist.cli.supervisor import Child, Subprocess, Supervisor

pytestmark = pytest.mark.unit

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


class Run:
    """A supervisor running in a thread, its printed lines collected."""

    def __init__(self, children: list[Child], state_file: Path, **timing: float) -> None:
        self.lines: list[str] = []
        self.supervisor = Supervisor(children, state_file, say=self.lines.append, interval=0.02, **timing)
        self.thread = threading.Thread(target=self.supervisor.run)
        self.thread.start()

    def wait_for(self, text: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            time.sleep(0.01)
        raise TimeoutError(f"no line with {text!r}: {self.lines}")

    def state(self) -> dict:
        return json.loads(self.supervisor.state_file.read_text())

    def wait_state(self, name: str, state: str, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.supervisor.state_file.exists():  # written once the first child started
                part = self.state()["parts"][name]
                if part["state"] == state:
                    return part
            time.sleep(0.01)
        raise TimeoutError(f"{name} never {state}: {self.supervisor.states()}")

    def stop(self) -> None:
        self.supervisor.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_a_dead_child_is_restarted_with_backoff_and_the_others_keep_running(tmp_path):
    children = [Child("steady", lambda: Subprocess(SLEEPER)), Child("flaky", lambda: Subprocess(SLEEPER))]
    run = Run(children, tmp_path / "supervisor.json", first_delay=0.2, max_delay=0.5, stable_after=60)
    try:
        steady = run.wait_state("steady", "running")["pid"]
        flaky = run.wait_state("flaky", "running")["pid"]
        assert run.state()["pid"] == os.getpid()

        os.kill(flaky, signal.SIGKILL)
        assert run.wait_for("flaky exited") == "flaky exited with code -9; restarting in 0.2 s"
        assert run.state()["parts"]["flaky"]["state"] == "restarting"
        assert run.state()["parts"]["flaky"]["pid"] is None
        assert _supervised_parts(tmp_path / "supervisor.json")["flaky"]["state"] == "restarting"
        again = run.wait_for("flaky restarted")
        part = run.wait_state("flaky", "running")
        assert again == f"flaky restarted (pid {part['pid']})" and part["restarts"] == 1
        assert not _alive(flaky) and _alive(part["pid"])

        # Each death in a row waits twice as long, up to max_delay.
        os.kill(part["pid"], signal.SIGTERM)
        assert run.wait_for("code -15") == "flaky exited with code -15; restarting in 0.4 s"
        part = run.wait_state("flaky", "running")
        os.kill(part["pid"], signal.SIGKILL)
        run.wait_for("restarting in 0.5 s")
        part = run.wait_state("flaky", "running")
        assert part["restarts"] == 3

        assert run.state()["parts"]["steady"] == {**run.state()["parts"]["steady"], "state": "running",
                                                  "restarts": 0, "pid": steady}
        assert _alive(steady)
    finally:
        run.stop()
    assert not _alive(steady) and not _alive(part["pid"])
    assert not (tmp_path / "supervisor.json").exists()


def test_backoff_starts_over_once_a_child_ran_long_enough(tmp_path):
    run = Run([Child("child", lambda: Subprocess(SLEEPER))], tmp_path / "s.json",
              first_delay=0.1, max_delay=5, stable_after=0.5)
    try:
        os.kill(run.wait_state("child", "running")["pid"], signal.SIGKILL)
        run.wait_for("restarting in 0.1 s")
        os.kill(run.wait_state("child", "running")["pid"], signal.SIGKILL)  # at once: longer wait
        run.wait_for("restarting in 0.2 s")
        pid = run.wait_state("child", "running")["pid"]
        time.sleep(0.7)  # ran longer than stable_after
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while len(run.lines) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [line.split("; ")[1] for line in run.lines if "exited" in line] == [
            "restarting in 0.1 s", "restarting in 0.2 s", "restarting in 0.1 s"]
    finally:
        run.stop()


def test_a_child_that_cannot_start_is_tried_again(tmp_path):
    attempts = []

    def start() -> Subprocess:
        attempts.append(time.monotonic())
        if len(attempts) in (2, 3):
            raise RuntimeError("port taken")
        return Subprocess(SLEEPER)

    run = Run([Child("broker", start)], tmp_path / "s.json", first_delay=0.1, max_delay=1, stable_after=60)
    try:
        os.kill(run.wait_state("broker", "running")["pid"], signal.SIGKILL)
        run.wait_for("broker exited with code -9; restarting in 0.1 s")
        assert run.wait_for("did not start") == "broker did not start (port taken); restarting in 0.2 s"
        run.wait_for("restarting in 0.4 s")
        assert run.wait_for("broker restarted").startswith("broker restarted (pid ")
        assert run.wait_state("broker", "running")["restarts"] == 1
        assert len(attempts) == 4
    finally:
        run.stop()


# A supervisor whose second child's start blocks for a minute, in a process of its own as
# `diarist up` runs it (in the pytest process, a signal's Python handler ran only after the
# 60 s sleep in two of many full runs: state other tests leave behind, not the supervisor's).
BLOCKING_START = """
import sys, time
from pathlib import Path
from diarist.cli.supervisor import Child, Subprocess, Supervisor

def slow():
    print("starting slow", flush=True)
    time.sleep(60)
    raise AssertionError("the start was not cut short")

def quick():
    child = Subprocess([sys.executable, "-c", "import time; time.sleep(120)"])
    print("quick", child.pid, flush=True)
    return child

supervisor = Supervisor([Child("quick", quick), Child("slow", slow)], Path(sys.argv[1]), say=lambda _: None)
supervisor.handle_signals()
supervisor.run()
print("stopped", supervisor.stopping, flush=True)
"""


def test_a_signal_during_a_blocking_start_stops_at_once(tmp_path):
    """The broker's start waits until it answers; Ctrl-C then must not wait for it."""
    process = subprocess.Popen([sys.executable, "-c", BLOCKING_START, str(tmp_path / "s.json")],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        quick_pid = int(process.stdout.readline().split()[1])
        assert process.stdout.readline().strip() == "starting slow"
        begin = time.monotonic()
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=30)[0]
        assert time.monotonic() - begin < 5
    finally:
        process.kill()
    assert process.returncode == 0 and rest.strip() == "stopped True"
    assert not _alive(quick_pid)
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("content", ["", "{", '{"parts": {}}', '{"pid": "x", "parts": {}}'])
def test_health_ignores_a_state_file_it_cannot_read(tmp_path, content):
    (tmp_path / "s.json").write_text(content)
    assert _supervised_parts(tmp_path / "s.json") is None
    assert _supervised_parts(tmp_path / "absent.json") is None


def test_health_ignores_the_state_file_of_a_supervisor_that_is_gone(tmp_path):
    gone = Subprocess([sys.executable, "-c", "pass"])
    gone.stop()
    parts = {"inference worker": {"state": "restarting", "restarts": 1, "since": "", "pid": None}}
    (tmp_path / "s.json").write_text(json.dumps({"pid": gone.pid, "parts": parts}))
    assert _supervised_parts(tmp_path / "s.json") is None
    (tmp_path / "s.json").write_text(json.dumps({"pid": os.getpid(), "parts": parts}))
    assert _supervised_parts(tmp_path / "s.json") == parts
