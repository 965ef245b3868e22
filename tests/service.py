"""Running diarist's processes for real in tests: the jobs worker with its edge, and inference."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

KEY = "test-key"


def cmdline(pid: int) -> str:
    """A process's command line, arguments joined by spaces; empty once it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def processes_with(variable: str) -> list[str]:
    """Processes whose environment holds `variable` (NAME=value): what `diarist up` started, and
    their children; each as "pid command line"."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if variable.encode() in f.read().split(b"\0"):
                    found.append(f"{pid} {cmdline(int(pid))}")
        except OSError:
            continue
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, data_dir: Path, bootstrap: str, namespace: str, model: str = "base",
                 blob_dir: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DIARIST_DATA_DIR": str(data_dir), "DIARIST_PORT": str(self.port),
            "DIARIST_BOOTSTRAP_SERVERS": bootstrap, "DIARIST_NAMESPACE": namespace,
            "DIARIST_API_KEYS": KEY, "DIARIST_MODEL": model, "DIARIST_SESSION_TIMEOUT": "6",
            "DIARIST_LOG_LEVEL": "info", "DIARIST_BLOB_DIR": str(blob_dir or data_dir / "blobs"),
            # The tests' own media and callback servers are on loopback; nothing else private is allowed.
            "DIARIST_URL_ALLOW": "127.0.0.0/8",
        }
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, role: str) -> None:
        log = open(self.data_dir / f"{role}.log", "ab")
        self.processes[role] = subprocess.Popen([sys.executable, "-P", "-m", "diarist.cli", role], env=self.env,
                                                stdout=log, stderr=subprocess.STDOUT)

    def stop(self, role: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(role)
        process.send_signal(sig)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        for role in list(self.processes):
            self.stop(role)

    def client(self, key: str | None = KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def wait_healthy(self, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for role, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{role} exited: {self.log(role)[-3000:]}")
            try:
                last = httpx.get(f"{self.url}/healthz", timeout=5)
                if last.status_code == 200:
                    return last.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"not healthy in {timeout} s: {last and last.text}")

    def log(self, role: str) -> str:
        return (self.data_dir / f"{role}.log").read_text(errors="replace")


def fenced(log: Path) -> dict[str, str]:
    """The environment that puts the network fence (tests/fence/sitecustomize.py) into a service's
    processes: no lookup of a name and no connection beyond loopback, each refusal a line in `log`."""
    paths = [str(Path(__file__).parent / "fence"), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths), "DIARIST_TEST_FENCE_LOG": str(log)}


def wait_for_job(client: httpx.Client, job_id: str, predicate, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} is still {job['status']} ({job['progress']}%) after {timeout} s")


def until_status(*statuses: str):
    return lambda job: job["status"] in statuses


def submit(client: httpx.Client, path: Path, options: str | None = None) -> dict:
    with path.open("rb") as media:
        response = client.post("/v1/jobs", files={"media": (path.name, media, "audio/wav")},
                               data={"options": options} if options else None)
    assert response.status_code == 201, response.text
    return response.json()


def peak_memory(pid: int) -> int:
    """Peak resident memory (VmHWM) of a process and its children, the largest, in bytes."""
    def hwm(p: int) -> int:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return max([hwm(pid), *(hwm(int(child)) for child in children)])
