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

from .service import free_port

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


def test_up_runs_everything_and_stops_cleanly(tmp_path, speech):
    port, broker_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIARIST_")}
    env.update(DIARIST_DATA_DIR=str(tmp_path), DIARIST_PORT=str(port), DIARIST_BROKER_PORT=str(broker_port),
               DIARIST_SESSION_TIMEOUT="6")
    up = subprocess.Popen([*DIARIST, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = _lines(up)
    try:
        key = _wait_for_line(lines, r"diarist is up: http://127\.0\.0\.1:\d+\s+\(API key: (\S+)\)", 180)[1]
        assert key == (tmp_path / "api-key").read_text().strip()
        deadline = time.monotonic() + 120
        while httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "never healthy"
            time.sleep(0.5)
        submitted = subprocess.run([*DIARIST, "submit", str(speech[0]), "--wait", "--data-dir", str(tmp_path)],
                                   env=env, capture_output=True, text=True, timeout=180)
        assert submitted.returncode == 0, submitted.stderr
        assert "lazy dog" in submitted.stdout.lower() and "the sun comes up" in submitted.stdout.lower()
        assert re.search(r"\[\s*0\.\d\d -\s+\d+\.\d\d\]", submitted.stdout)
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(90) == 0
    _wait_for_line(lines, "diarist stopped", 5)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", broker_port)) != 0, "the broker still listens"
