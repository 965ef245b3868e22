"""The README's first command for real: `diarist up` on a fresh data directory, then `submit`."""
from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from .service import cmdline, free_port, processes_with

pytestmark = pytest.mark.system

DIARIST = [sys.executable, "-P", "-m", "diarist.cli"]


def _lines(process: subprocess.Popen) -> queue.Queue:
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    return lines


def _wait_for_line(lines: queue.Queue, pattern: str, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    raise TimeoutError(f"no line matching {pattern!r}; saw:\n{''.join(seen[-40:])}")


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(child) for child in f.read().split()}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _health(port: int) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


def _submit(speech, tmp_path, env) -> str:
    submitted = subprocess.run([*DIARIST, "submit", str(speech[0]), "--wait", "--data-dir", str(tmp_path)],
                               env=env, capture_output=True, text=True, timeout=180)
    assert submitted.returncode == 0, submitted.stderr
    assert "lazy dog" in submitted.stdout.lower() and "the sun comes up" in submitted.stdout.lower()
    assert re.search(r"\[\s*0\.\d\d -\s+\d+\.\d\d\]", submitted.stdout)
    return submitted.stdout


def test_up_runs_everything_restarts_what_dies_and_stops_cleanly(tmp_path, speech):
    port, broker_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIARIST_")}
    env.update(DIARIST_DATA_DIR=str(tmp_path), DIARIST_PORT=str(port), DIARIST_BROKER_PORT=str(broker_port),
               DIARIST_SESSION_TIMEOUT="6", DIARIST_URL_ALLOW="127.0.0.0/8")
    up = subprocess.Popen([*DIARIST, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = _lines(up)
    try:
        key = _wait_for_line(lines, r"diarist is up: http://127\.0\.0\.1:\d+\s+\(API key: (\S+)\)", 180)[1]
        assert key == (tmp_path / "api-key").read_text().strip()
        deadline = time.monotonic() + 120
        while _health(port).status_code != 200:
            assert time.monotonic() < deadline, "never healthy"
            time.sleep(0.5)
        parts = _health(port).json()["parts"]
        assert {name: (part["state"], part["restarts"]) for name, part in parts.items()} == {
            "Kafka broker": ("running", 0), "jobs worker": ("running", 0), "inference worker": ("running", 0)}
        assert {part["pid"] for part in parts.values()} == _children(up.pid)
        _submit(speech, tmp_path, env)

        # SIGKILL the inference worker: it comes back, the rest serves on, /healthz says so meanwhile.
        killed = parts["inference worker"]["pid"]
        assert cmdline(killed).endswith("-m diarist.cli inference ")
        os.kill(killed, signal.SIGKILL)
        _wait_for_line(lines, r"^inference worker exited with code -9; restarting in 1 s$", 10)
        health = _health(port)
        assert health.status_code == 503, health.text
        assert health.json()["parts"]["inference worker"]["state"] == "restarting"
        assert health.json()["checks"]["parts_running"] is False
        assert health.json()["parts"]["jobs worker"]["state"] == "running"
        restarted = int(_wait_for_line(lines, r"^inference worker restarted \(pid (\d+)\)$", 30)[1])
        assert restarted in _children(up.pid) and not _alive(killed)
        deadline = time.monotonic() + 120
        while (health := _health(port)).status_code != 200:
            assert time.monotonic() < deadline, f"never healthy again: {health.text}"
            time.sleep(0.5)
        inference = health.json()["parts"]["inference worker"]
        assert (inference["state"], inference["restarts"], inference["pid"]) == ("running", 1, restarted)
        _submit(speech, tmp_path, env)
        started = _children(up.pid)
    finally:
        up.send_signal(signal.SIGINT)
        assert up.wait(90) == 0
    _wait_for_line(lines, "diarist stopped", 5)
    assert not [pid for pid in started if _alive(pid)]
    assert not processes_with(f"DIARIST_DATA_DIR={tmp_path}"), "processes left behind"
    assert not (tmp_path / "supervisor.json").exists()
    for closed in (broker_port, port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", closed)) != 0, f"port {closed} still listens"
