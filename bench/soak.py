"""Soak: many short jobs of real human speech through `diarist up`, with crashes, a broker restart,
stops, retries and deletes; then a table of what was lost, stuck, completed twice, answered 5xx or
never announced.

    nice -n 10 python bench/soak.py [--jobs 1000] [--rate 0.15] [--seed 0] [--keep DIR]

What it does (docs: bench/README.md, "soak.py"):

- Clips of 1 to 10 s: recorded human voices from Debian's Asterisk prompt packages
  (asterisk-prompt-es-co, -fr-armelle, -it-menardi-wav, asterisk-core-sounds-it and -ru; through
  bench/corpus.py when it is there), a few prompts back to back per clip, and a share of
  espeak-ng English. The packages kept for independent checks (pocketsphinx-testdata,
  asterisk-core-sounds-en/-es/-fr, pyannote-audio's audio) are never used.
- `python -m diarist.cli up` on free ports with its own data directory, DIARIST_MODEL=tiny.en,
  DIARIST_RATE_LIMIT=0, DIARIST_SESSION_TIMEOUT=6, DIARIST_URL_ALLOW=127.0.0.0/8 and a callback
  secret. tiny.en is English only, so every job says language "en" (or leaves it to the model's
  default): the transcripts of the non-English voices are poor, the lifecycle is what counts.
- Jobs at a steady rate through the native API (multipart), Rev AI's /speechtotext/v1/jobs and
  CPqD's /trd/v3/job/create, each with a callback URL of a loopback receiver run here (it checks
  the signature and counts deliveries per job and X-Diarist-Event-Id). Some jobs are stopped
  (queued or running), some of those retried, some deleted once ended, a few deleted by
  delete_after_seconds 0.
- SIGKILLs of the inference and jobs worker processes (children of `up`, as its
  supervisor.json names them; an inference worker while a job runs), and one SIGKILL of the
  broker's JVM, spread over the submission; the supervisor restarts each.
- Every request is retried on a connection error, a timeout, 429 or any 5xx (after Retry-After),
  a create with the same Idempotency-Key, so that a repeat never makes a second job.
- At the end: every job terminal (or stuck after --drain-timeout), every job read back, the
  listing compared with what was accepted, each job's history and the lifecycle topic checked
  for two completions of one attempt, and each ending in a history matched with a delivered
  callback (by event id, through the topic).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import wave
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.service import cmdline, processes_with  # noqa: E402

SAMPLE_RATE = 16000
TERMINAL = frozenset({"COMPLETED", "FAILED", "STOPPED", "DELETED"})
ENDINGS = ("completed", "failed", "stopped")
KEY = "soak-key"
SECRET = "soak-callback-secret"
NAMESPACE = "diarist"

# The recorded voices (Debian package, folder inside it, file pattern). Never a reserved package.
VOICES = [("asterisk-prompt-es-co", "usr/share/asterisk/sounds/es", "*.gsm"),
          ("asterisk-prompt-fr-armelle", "usr/share/asterisk/sounds/fr", "*.gsm"),
          ("asterisk-prompt-it-menardi-wav", "usr/share/asterisk/sounds/it_IT_f_Menardi", "*.wav"),
          ("asterisk-core-sounds-it-wav", "usr/share/asterisk/sounds/it_IT_m_Carlo", "*.wav"),
          ("asterisk-core-sounds-ru-wav", "usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU", "*.wav")]
RESERVED = re.compile(r"^(pocketsphinx-testdata|asterisk-core-sounds-(en|es|fr)(-.*)?|pyannote[-_.]audio)$")
NOT_SPEECH = re.compile(r"beep|tone|silence|click|dtmf|music|ring|busy-signal|^\d+$")
ENGLISH = ["The quick brown fox jumps over the lazy dog.",
           "Every morning the baker opens the shop before the sun comes up.",
           "She bought three apples, a loaf of bread and a bottle of milk.",
           "The weather report says it will rain again tomorrow afternoon.",
           "Please close the window when you leave the meeting room.",
           "Transcription jobs flow through Kafka topics and come out as timed words."]
ESPEAK_VOICES = ["en-us+m3", "en-us+f4", "en-gb+m4", "en-us+f1"]


# ---------------------------------------------------------------------------------------------
# Clips

@dataclass(frozen=True)
class Clip:
    path: Path
    seconds: float
    source: str  # the package (or "espeak-ng")


def _recordings_from_corpus() -> dict[str, list[np.ndarray]] | None:
    """The voices' recordings through bench/corpus.py (trimmed, 16 kHz), when that module is there."""
    try:
        from bench import corpus
    except ImportError:
        return None
    wanted = {package for package, _, _ in VOICES}
    return {voice.package: [c[0] for c in corpus.clips(voice)] for voice in corpus.voices() if voice.package in wanted}


def _recordings_fetched(cache: Path) -> dict[str, list[np.ndarray]]:
    """The same without bench/corpus.py: `apt-get download` and `dpkg-deb -x` into the cache, sox to 16 kHz."""
    out = {}
    for package, folder, pattern in VOICES:
        assert not RESERVED.match(package), package
        target = cache / "x" / package
        if not (target / ".done").exists():
            debs = cache / "debs"
            debs.mkdir(parents=True, exist_ok=True)
            if not sorted(debs.glob(f"{package}_*.deb")):
                subprocess.run(["apt-get", "download", package], cwd=debs, check=True, capture_output=True)
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", str(sorted(debs.glob(f"{package}_*.deb"))[-1]), str(target)], check=True)
            (target / ".done").touch()
        recordings = []
        for path in sorted((target / folder).glob(pattern)):
            if NOT_SPEECH.search(path.stem):
                continue
            raw = subprocess.run(["sox", str(path), "-t", "raw", "-e", "float", "-b", "32", "-c", "1", "-r",
                                  str(SAMPLE_RATE), "-"], check=True, capture_output=True).stdout
            audio = np.frombuffer(raw, dtype=np.float32)
            if 0.5 <= len(audio) / SAMPLE_RATE <= 10.0:
                recordings.append(audio)
        out[package] = recordings
    return out


def recordings() -> dict[str, list[np.ndarray]]:
    found = _recordings_from_corpus()
    if not found:
        cache = Path(os.environ.get("DIARIST_CORPUS_CACHE") or Path.home() / ".cache" / "diarist" / "corpus")
        found = _recordings_fetched(cache)
    assert not any(RESERVED.match(p) for p in found)
    return {p: [a for a in r if 0.5 <= len(a) / SAMPLE_RATE <= 10.0] for p, r in found.items() if r}


def _write_wav(path: Path, audio: np.ndarray) -> Path:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    return path


def make_clips(directory: Path, count: int, seed: int = 0, espeak_share: float = 0.1) -> list[Clip]:
    """`count` clips of 1 to 10 s: recordings of one voice back to back (0.3 s apart), or espeak-ng English."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    voices = recordings()
    packages = sorted(voices)
    espeak = int(round(count * espeak_share)) if shutil.which("espeak-ng") else 0
    out = []
    for k in range(count - espeak):
        package = packages[k % len(packages)]
        target = rng.uniform(1.0, 10.0)
        pieces: list[np.ndarray] = []
        total = 0.0
        for i in rng.sample(range(len(voices[package])), len(voices[package])):
            audio = voices[package][i]
            seconds = len(audio) / SAMPLE_RATE
            if total + seconds > 10.0:
                continue
            pieces += [audio, np.zeros(int(0.3 * SAMPLE_RATE), dtype=np.float32)]
            total += seconds + 0.3
            if total >= target:
                break
        audio = np.concatenate(pieces[:-1])
        audio = audio / (np.abs(audio).max() + 1e-9) * 0.7
        path = _write_wav(directory / f"clip-{k:03d}.wav", audio)
        out.append(Clip(path, round(len(audio) / SAMPLE_RATE, 2), package))
    for k in range(espeak):
        sentences = rng.sample(ENGLISH, rng.randint(1, 2))
        path = directory / f"espeak-{k:03d}.wav"
        subprocess.run(["espeak-ng", "-v", rng.choice(ESPEAK_VOICES), "-s", "160", "-w", str(path), " ".join(sentences)],
                       check=True, capture_output=True)
        with wave.open(str(path)) as w:
            seconds = w.getnframes() / w.getframerate()
        out.append(Clip(path, round(seconds, 2), "espeak-ng"))
    return out


# ---------------------------------------------------------------------------------------------
# The callback receiver

class Receiver:
    """A loopback HTTP server that takes every callback (200), checks its signature and records
    (job id, event id, event word, API) per delivery."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.lock = threading.Lock()
        self.deliveries: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                expected = "sha256=" + hmac.new(receiver.secret, body, hashlib.sha256).hexdigest()
                try:
                    data = json.loads(body)
                except ValueError:
                    data = {}
                job = data.get("job") if isinstance(data, dict) else None
                word = data.get("event") or (job or {}).get("status")
                with receiver.lock:
                    receiver.deliveries.append({
                        "job_id": self.headers.get("X-Diarist-Job-Id"), "event_id": self.headers.get("X-Diarist-Event-Id"),
                        "signed": hmac.compare_digest(expected, self.headers.get("X-Diarist-Signature") or ""),
                        "api": self.path.split("/")[2] if self.path.count("/") >= 2 else self.path,
                        "word": word, "path": self.path, "at": time.monotonic()})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.deliveries)


# ---------------------------------------------------------------------------------------------
# `diarist up`

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_pair() -> int:
    """A port whose next one is free too (the broker's controller takes port + 1)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port + 1)) != 0:
                return port
    return free_port()


def children_of(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(c) for c in f.read().split()}
    except OSError:
        return set()


PARTS = {"inference": ("inference worker", "-m diarist.cli inference"), "jobs": ("jobs worker", "-m diarist.cli worker"),
         "broker": ("Kafka broker", "kafka.Kafka")}


class Up:
    """`python -m diarist.cli up` on free ports, its output kept in <data dir>/up.log."""

    def __init__(self, data_dir: Path, model: str = "tiny.en", threads: int | None = None,
                 say: Callable[[str], None] = print) -> None:
        self.data_dir = data_dir
        self.port, self.broker_port = free_port(), _free_pair()
        self.url = f"http://127.0.0.1:{self.port}"
        self.say = say
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DIARIST_")}
        self.env.update(DIARIST_DATA_DIR=str(data_dir), DIARIST_PORT=str(self.port),
                        DIARIST_BROKER_PORT=str(self.broker_port), DIARIST_MODEL=model, DIARIST_API_KEYS=KEY,
                        DIARIST_URL_ALLOW="127.0.0.0/8", DIARIST_RATE_LIMIT="0", DIARIST_SESSION_TIMEOUT="6",
                        DIARIST_CALLBACK_SECRET=SECRET, DIARIST_LOG_LEVEL="warn")
        if threads:
            self.env["DIARIST_INFERENCE_THREADS"] = str(threads)
        self.process: subprocess.Popen | None = None
        self.lines: queue.Queue[str] = queue.Queue()
        self.supervisor_lines: list[tuple[float, str]] = []
        self.error_lines = 0

    def start(self, timeout: float = 300.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([sys.executable, "-P", "-m", "diarist.cli", "up"], env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        log = open(self.data_dir / "up.log", "a")
        supervisor = re.compile(r"(Kafka broker|jobs worker|inference worker) (exited|restarted|did not start)")

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                if found := supervisor.search(line):
                    text = line[found.start():].rstrip()  # without the terminal escapes before it
                    self.supervisor_lines.append((time.monotonic(), text))
                    self.say(f"  up: {text}")
                if "Traceback" in line or " ERROR " in line or "[ERROR]" in line:
                    self.error_lines += 1
                self.lines.put(line)
            log.close()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"diarist up exited with code {self.process.returncode}; see {self.data_dir / 'up.log'}")
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if "diarist is up:" in line:  # after the terminal escapes Faust writes
                return
        raise TimeoutError(f"diarist up did not come up in {timeout:g} s; see {self.data_dir / 'up.log'}")

    def parts(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads((self.data_dir / "supervisor.json").read_text())["parts"]
        except (OSError, ValueError, KeyError):
            return {}

    def all_running(self) -> bool:
        parts = self.parts()
        return bool(parts) and all(p["state"] == "running" for p in parts.values())

    def kill(self, part: str) -> int:
        """SIGKILLs the part (inference, jobs, broker) by the pid `up` keeps for it; returns the pid."""
        assert self.process is not None
        name, marker = PARTS[part]
        pid = self.parts()[name]["pid"]
        if pid not in children_of(self.process.pid) or marker not in cmdline(pid):
            raise RuntimeError(f"{name} pid {pid} is not a child of up running {marker!r}: {cmdline(pid)!r}")
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self, timeout: float = 120.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


# ---------------------------------------------------------------------------------------------
# The client: every request retried through restarts, a create always with its Idempotency-Key

@dataclass
class Stats:
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # 5xx other than 503 with Retry-After
    unavailable: int = 0  # 503 with Retry-After: retried
    transport_errors: Counter = field(default_factory=Counter)
    gave_up: list[str] = field(default_factory=list)
    repeated_creates: int = 0  # creates sent again with their Idempotency-Key (after an error)


class Client:
    def __init__(self, url: str, stats: Stats, deadline: float = 300.0) -> None:
        self.http = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"},
                                      timeout=httpx.Timeout(60.0, connect=10.0))
        self.stats = stats
        self.deadline = deadline

    async def close(self) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, *, key: str | None = None, **kwargs: Any) -> httpx.Response | None:
        """The answer, once it is neither a transport error, 429 nor 5xx; None when that never came."""
        headers = {"Idempotency-Key": key} if key else {}
        give_up = time.monotonic() + self.deadline
        wait = 0.5
        tries = 0
        while True:
            self.stats.requests += 1
            tries += 1
            if key and tries == 2:
                self.stats.repeated_creates += 1
            try:
                response = await self.http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                self.stats.transport_errors[type(exc).__name__] += 1
                response = None
            if response is not None:
                self.stats.statuses[response.status_code] += 1
                if response.status_code >= 500:
                    if response.status_code == 503 and response.headers.get("Retry-After"):
                        self.stats.unavailable += 1
                    else:
                        self.stats.server_errors.append(f"{method} {path} -> {response.status_code}: {response.text[:300]}")
                elif response.status_code != 429:
                    return response
                retry_after = response.headers.get("Retry-After", "")
                wait = float(retry_after) if retry_after.isdigit() else wait
            if time.monotonic() + wait > give_up:
                self.stats.gave_up.append(f"{method} {path}")
                return None
            await asyncio.sleep(min(wait, 5.0))
            wait = min(wait * 2, 5.0) if response is None else wait


# ---------------------------------------------------------------------------------------------
# The soak

@dataclass
class Config:
    jobs: int = 1000
    rate: float = 0.15  # jobs submitted a second
    kills: tuple[str, ...] = ("inference", "jobs", "inference", "jobs", "inference")
    broker_restarts: int = 1
    stop_share: float = 0.12  # of these, half are retried once stopped
    delete_share: float = 0.10
    retention_share: float = 0.03  # delete_after_seconds 0
    espeak_share: float = 0.1
    apis: tuple[str, ...] = ("native", "native", "rev", "cpqd")
    drain_timeout: float = 900.0  # after the last submission
    callback_timeout: float = 120.0  # after every job is terminal
    seed: int = 0
    data_dir: Path | None = None
    model: str = "tiny.en"
    threads: int | None = None
    say: Callable[[str], None] = print


@dataclass
class Job:
    n: int
    api: str
    clip: Clip
    action: str  # plain, stop, stop+retry, delete, retention
    key: str
    id: str | None = None
    create_status: int | None = None
    notes: list[str] = field(default_factory=list)


class Soak:
    def __init__(self, config: Config, up: Up, client: Client, receiver: Receiver, clips: list[Clip]) -> None:
        self.config, self.up, self.client, self.receiver = config, up, client, receiver
        self.rng = random.Random(config.seed)
        self.run_id = uuid.uuid4().hex[:8]
        self.jobs: list[Job] = []
        self.clips = clips
        self.statuses: dict[str, dict[str, Any]] = {}  # job id -> the job as last listed
        self.listed_at = 0.0
        self.chaos_log: list[str] = []
        self.started = time.monotonic()

    def plan(self, n: int) -> Job:
        api = self.config.apis[n % len(self.config.apis)]
        draw = self.rng.random()
        c = self.config
        if draw < c.stop_share / 2:
            action = "stop"
        elif draw < c.stop_share:
            action = "stop+retry"
        elif draw < c.stop_share + c.delete_share:
            action = "delete"
        elif draw < c.stop_share + c.delete_share + c.retention_share and api != "cpqd":
            action = "retention"
        else:
            action = "plain"
        return Job(n, api, self.rng.choice(self.clips), action, f"soak-{self.run_id}-{n}")

    # -- creating --------------------------------------------------------------------------

    async def create(self, job: Job) -> None:
        data = job.clip.path.read_bytes()
        name = job.clip.path.name
        callback = f"{self.receiver.url}/cb/{job.api}/{job.n}"
        if job.api == "native":
            options: dict[str, Any] = {"language": "en", "tag": f"soak-{self.run_id}", "callback_urls": [callback]}
            if job.action == "retention":
                options["delete_after_seconds"] = 0
            response = await self.client.request("POST", "/v1/jobs", key=job.key, files={"media": (name, data, "audio/wav")},
                                                 data={"options": json.dumps(options)})
            ok, read = 201, lambda body: body["id"]
        elif job.api == "rev":
            options = {"language": "en", "metadata": f"soak-{self.run_id}", "callback_url": callback}
            if job.action == "retention":
                options["delete_after_seconds"] = 0
            response = await self.client.request("POST", "/speechtotext/v1/jobs", key=job.key,
                                                 files={"media": (name, data, "audio/wav")},
                                                 data={"options": json.dumps(options)})
            ok, read = 200, lambda body: body["id"]
        else:
            response = await self.client.request("POST", f"/trd/v3/job/create?tag=soak-{self.run_id}", key=job.key,
                                                 files={"upload_file": (name, data, "audio/wav")},
                                                 data={"callback_urls": callback})
            ok, read = 200, lambda body: body["job"]["id"]
        if response is None:
            job.notes.append("create never answered")
            return
        job.create_status = response.status_code
        if response.status_code != ok:
            job.notes.append(f"create answered {response.status_code}: {response.text[:200]}")
            return
        job.id = read(response.json())

    # -- acting on a job ---------------------------------------------------------------------

    async def status_of(self, job: Job) -> str | None:
        return (self.statuses.get(job.id or "") or {}).get("status")

    async def wait_for(self, job: Job, statuses: frozenset[str], timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (status := await self.status_of(job)) in statuses:
                return status
            await asyncio.sleep(1.0)
        return await self.status_of(job)

    async def act(self, job: Job) -> None:
        await self.create(job)
        if job.id is None or job.action in ("plain", "retention"):
            return
        if job.action.startswith("stop"):
            if self.rng.random() < 0.5:  # a running job, where one can be caught
                await self.wait_for(job, frozenset({"IN_PROGRESS"}) | TERMINAL, 120)
                await asyncio.sleep(self.rng.uniform(0, 0.8))
            else:
                await asyncio.sleep(self.rng.uniform(0, 3))
            response = await self.client.request("POST", f"/v1/jobs/{job.id}/stop")
            job.notes.append(f"stop: {response.status_code if response is not None else 'no answer'}")
            if job.action == "stop+retry":
                status = await self.wait_for(job, TERMINAL, 120)
                if status in ("STOPPED", "FAILED"):
                    response = await self.client.request("POST", f"/v1/jobs/{job.id}/retry")
                    job.notes.append(f"retry: {response.status_code if response is not None else 'no answer'}")
        elif job.action == "delete":
            await self.wait_for(job, TERMINAL, self.config.drain_timeout + len(self.jobs) / self.config.rate)
            path = {"native": f"/v1/jobs/{job.id}", "rev": f"/speechtotext/v1/jobs/{job.id}",
                    "cpqd": f"/trd/v3/job/{job.id}"}[job.api]
            response = await self.client.request("DELETE", path)
            job.notes.append(f"delete: {response.status_code if response is not None else 'no answer'}")

    # -- watching ------------------------------------------------------------------------------

    async def list_all(self) -> dict[str, dict[str, Any]] | None:
        """Every job the service lists, by id (None when the listing did not answer)."""
        found: dict[str, dict[str, Any]] = {}
        cursor = None
        while True:
            params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
            response = await self.client.request("GET", "/v1/jobs", params=params)
            if response is None or response.status_code != 200:
                return None
            page = response.json()
            for job in page["jobs"]:
                found[job["id"]] = job
            cursor = page.get("next_cursor")
            if not cursor:
                return found

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            listed = await self.list_all()
            if listed is not None:
                self.statuses, self.listed_at = listed, time.monotonic()
            try:
                await asyncio.wait_for(stop.wait(), 3.0)
            except TimeoutError:
                pass

    # -- chaos ---------------------------------------------------------------------------------

    async def chaos(self, window: float) -> None:
        events = list(self.config.kills)
        for _ in range(self.config.broker_restarts):
            events.insert(len(events) // 2 + (len(events) % 2), "broker")
        for k, part in enumerate(events):
            at = self.started + window * (k + 1) / (len(events) + 1)
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            deadline = time.monotonic() + 180
            while not self.up.all_running() and time.monotonic() < deadline:
                await asyncio.sleep(1.0)
            running = None
            if part == "inference":  # while a job runs, where one does within a minute
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    running = next((j for j in self.statuses.values() if j["status"] == "IN_PROGRESS"), None)
                    if running:
                        break
                    await asyncio.sleep(0.5)
            pid = await asyncio.to_thread(self.up.kill, part)
            line = f"{time.monotonic() - self.started:6.1f} s  SIGKILL {PARTS[part][0]} (pid {pid})" + (
                f" while job {running['id'][:8]} was IN_PROGRESS" if running else "")
            self.chaos_log.append(line)
            self.config.say(line)

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        c = self.config
        self.jobs = [self.plan(n) for n in range(c.jobs)]
        window = c.jobs / c.rate
        self.started = time.monotonic()
        stop_watching = asyncio.Event()
        watcher = asyncio.create_task(self.watch(stop_watching))
        chaos = asyncio.create_task(self.chaos(window))
        tasks = []
        for job in self.jobs:
            await asyncio.sleep(max(0.0, self.started + job.n / c.rate - time.monotonic()))
            tasks.append(asyncio.create_task(self.act(job)))
            if job.n and job.n % 25 == 0:
                c.say(f"{time.monotonic() - self.started:6.1f} s  submitted {job.n}, "
                      f"{sum(j['status'] in TERMINAL for j in self.statuses.values())} ended")
        submitted_at = time.monotonic()
        await asyncio.gather(*tasks)
        await chaos
        c.say(f"{time.monotonic() - self.started:6.1f} s  every request made; draining")
        # Drain: until every accepted job is terminal (read afresh), or the timeout.
        accepted = [j for j in self.jobs if j.id]
        deadline = submitted_at + c.drain_timeout
        all_ended_at = None
        said = time.monotonic()
        while time.monotonic() < deadline:
            if self.listed_at > time.monotonic() - 4 and all(
                    self.statuses.get(j.id or "", {}).get("status") in TERMINAL for j in accepted):
                all_ended_at = time.monotonic()
                break
            if time.monotonic() - said >= 60:
                said = time.monotonic()
                c.say(f"{said - self.started:6.1f} s  draining: "
                      f"{sum(self.statuses.get(j.id or '', {}).get('status') in TERMINAL for j in accepted)} "
                      f"of {len(accepted)} ended")
            await asyncio.sleep(2.0)
        # Callbacks: until each ending has a delivery, or the callback timeout.
        topic = None
        deadline = time.monotonic() + c.callback_timeout
        while True:
            final = await self.list_all() or self.statuses
            topic = await asyncio.to_thread(read_topic, f"127.0.0.1:{self.up.broker_port}")
            undelivered = callbacks_lost(accepted, final, self.receiver.snapshot(), topic)[0]
            if not undelivered or time.monotonic() > deadline or all_ended_at is None:
                break
            await asyncio.sleep(3.0)
        stop_watching.set()
        await watcher
        reads = await asyncio.gather(*(self.read_back(j) for j in accepted))
        return self.report(accepted, final, dict(zip([j.id for j in accepted], reads)), topic, all_ended_at)

    async def read_back(self, job: Job) -> int | None:
        response = await self.client.request("GET", f"/v1/jobs/{job.id}")
        return response.status_code if response is not None else None

    def report(self, accepted: list[Job], listed: dict[str, dict[str, Any]], reads: dict[str | None, int | None],
               topic: dict[str, Any] | None, all_ended_at: float | None) -> dict[str, Any]:
        c = self.config
        ids = {j.id for j in accepted}
        lost = sorted(j.id for j in accepted if j.id not in listed or reads.get(j.id) == 404)
        stuck = sorted(j.id for j in accepted if j.id in listed and listed[j.id]["status"] not in TERMINAL)
        extra = sorted(set(listed) - ids)  # listed but never accepted: a create that made two jobs
        twice_history = sorted(j for j, job in listed.items() if j in ids and max(completions_per_attempt(job), default=0) > 1)
        twice_topic = sorted(topic["completed_twice"]) if topic else None
        undelivered, endings, repeats, unsigned, unknown = callbacks_lost(accepted, listed, self.receiver.snapshot(), topic)
        ended = sum(1 for j in accepted if listed.get(j.id or "", {}).get("status") in TERMINAL)
        wall = (all_ended_at or time.monotonic()) - self.started
        statuses = Counter(listed[j.id]["status"] for j in accepted if j.id in listed)
        failures = Counter(listed[j.id].get("failure_reason") for j in accepted
                           if j.id in listed and listed[j.id]["status"] == "FAILED")
        timings = job_timings([listed[j.id] for j in accepted if j.id in listed])
        return {
            "jobs": c.jobs, "accepted": len(accepted), "timings": timings,
            "not_accepted": [(j.n, j.notes) for j in self.jobs if not j.id],
            "lost": lost, "stuck": stuck, "extra_jobs": extra, "completed_twice_history": twice_history,
            "completed_twice_topic": twice_topic, "server_errors": self.client.stats.server_errors,
            "unavailable_retried": self.client.stats.unavailable, "transport_errors": dict(self.client.stats.transport_errors),
            "requests": self.client.stats.requests, "repeated_creates": self.client.stats.repeated_creates,
            "http_statuses": dict(sorted(self.client.stats.statuses.items())),
            "gave_up": self.client.stats.gave_up, "callbacks_lost": undelivered, "endings_with_callbacks": endings,
            "callback_repeats": repeats, "callbacks_unsigned": unsigned, "callbacks_unknown_event": unknown,
            "statuses": dict(statuses), "failure_reasons": dict(failures), "ended": ended, "wall_seconds": round(wall, 1),
            "lifecycles_per_second": round(ended / wall, 3) if wall else 0.0,
            "audio_seconds": round(sum(j.clip.seconds for j in accepted), 1),
            "actions": dict(Counter(j.action for j in self.jobs)), "apis": dict(Counter(j.api for j in self.jobs)),
            "sources": dict(Counter(j.clip.source for j in self.jobs)),
            "chaos": self.chaos_log, "supervisor": [line for _, line in self.up.supervisor_lines],
            "error_lines": self.up.error_lines, "all_ended": all_ended_at is not None,
            "topic_read": topic is not None,
        }


def job_timings(jobs: list[dict[str, Any]]) -> dict[str, float]:
    """Medians over the completed jobs: queue wait (created to started) and run (started to completed), seconds."""
    from datetime import datetime

    def seconds(job: dict[str, Any], a: str, b: str) -> float:
        return (datetime.fromisoformat(job[b]) - datetime.fromisoformat(job[a])).total_seconds()

    done = [j for j in jobs if j["status"] == "COMPLETED" and j.get("started_at") and j.get("completed_at")]
    if not done:
        return {}
    return {"queued_median": round(float(np.median([seconds(j, "created_at", "started_at") for j in done])), 2),
            "run_median": round(float(np.median([seconds(j, "started_at", "completed_at") for j in done])), 2),
            "run_max": round(max(seconds(j, "started_at", "completed_at") for j in done), 2)}


def completions_per_attempt(job: dict[str, Any]) -> list[int]:
    """`completed` transitions in each attempt of the job's history (attempts split at `retried`)."""
    counts = [0]
    for entry in sorted(job.get("history", []), key=lambda e: e["version"]):
        if entry["event"] == "retried":
            counts.append(0)
        elif entry["event"] == "completed":
            counts[-1] += 1
    return counts


def read_topic(bootstrap: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
    """The lifecycle topic, read as a downstream consumer does: every event's (job, version, word)
    by event id, and the (job, attempt) pairs with more than one distinct JobCompleted."""
    try:
        from confluent_kafka import Consumer, TopicPartition

        from diarist.schemas import codec
    except ImportError:
        return None
    topic = f"{namespace}.job-events"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"soak-reader-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False})
    events: dict[str, tuple[str, int, str]] = {}
    completed: dict[tuple[str, str], set[str]] = defaultdict(set)
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, p, low)])
            seen, give_up = low, time.monotonic() + 60
            while seen < high and time.monotonic() < give_up:
                message = consumer.poll(2)
                if message is None or message.error():
                    continue
                seen = message.offset() + 1
                try:
                    name, record = codec().decode(message.value())
                except Exception:  # noqa: BLE001 - a poison value is the dead-letter test's business
                    continue
                word = name.removeprefix("diarist.Job").lower()
                if "event_id" in record and "version" in record:
                    events[record["event_id"]] = (record["job_id"], record["version"], word)
                if word == "completed":
                    attempt = re.search(r"attempt-(\d+)", record["result"]["key"])
                    completed[(record["job_id"], attempt[1] if attempt else "?")].add(record["event_id"])
    except Exception as exc:  # noqa: BLE001 - the broker may be restarting: the caller reads again
        print(f"  (lifecycle topic not read: {exc})", flush=True)
        return None
    finally:
        consumer.close()
    return {"events": events, "completed_twice": {f"{j} attempt {a}" for (j, a), ids in completed.items() if len(ids) > 1}}


def callbacks_lost(accepted: list[Job], listed: dict[str, dict[str, Any]], deliveries: list[dict[str, Any]],
                   topic: dict[str, Any] | None) -> tuple[list[str], int, int, int, int]:
    """(endings not delivered, endings of jobs with a callback, repeated deliveries, deliveries
    without a valid signature, deliveries of an event id that is no ending of the job's history).

    An ending is a `completed`, `failed` or `stopped` entry in a job's history. With the topic,
    it is delivered when a delivery carried the event id the topic has at that job, version and
    word; without it, when the job's distinct delivered event ids are at least its endings."""
    by_job: dict[str, set[str]] = defaultdict(set)
    per_event: Counter = Counter()
    unsigned = 0
    for d in deliveries:
        by_job[d["job_id"]].add(d["event_id"])
        per_event[d["event_id"]] += 1
        unsigned += not d["signed"]
    lost, endings, unknown = [], 0, 0
    for job in accepted:
        record = listed.get(job.id or "")
        if record is None:
            continue
        ends = [(e["version"], e["event"]) for e in record.get("history", []) if e["event"] in ENDINGS]
        endings += len(ends)
        got = by_job.get(job.id or "", set())
        if topic is not None:
            delivered = {topic["events"][e][1:] for e in got if e in topic["events"]}
            lost += [f"{job.id} v{v} {w}" for v, w in ends if (v, w) not in delivered]
            unknown += sum(1 for e in got if e in topic["events"] and topic["events"][e][1:] not in ends)
        elif len(got) < len(ends):
            lost += [f"{job.id} ({len(ends) - len(got)} of {len(ends)})"]
    repeats = sum(n - 1 for n in per_event.values())
    return lost, endings, repeats, unsigned, unknown


# ---------------------------------------------------------------------------------------------
# Running it

def run(config: Config) -> dict[str, Any]:
    """Makes the clips, starts `diarist up`, soaks, stops it; returns the report."""
    say = config.say
    owned = config.data_dir is None
    base = Path(tempfile.mkdtemp(prefix="diarist-soak-")) if owned else config.data_dir
    assert base is not None
    try:
        say(f"clips: {min(config.jobs, 60)} into {base / 'clips'}")
        clips = make_clips(base / "clips", min(config.jobs, 60), config.seed, config.espeak_share)
        up = Up(base / "data", config.model, config.threads, say)
        say(f"starting diarist up (data in {up.data_dir}, edge {up.url}, broker port {up.broker_port})")
        t0 = time.monotonic()
        with Receiver(SECRET) as receiver:
            try:
                up.start()
                say(f"up in {time.monotonic() - t0:.1f} s; {config.jobs} jobs at {config.rate:g}/s")

                async def soak() -> dict[str, Any]:
                    client = Client(up.url, Stats())
                    try:
                        return await Soak(config, up, client, receiver, clips).run()
                    finally:
                        await client.close()

                report = asyncio.run(soak())
            finally:
                code = up.stop()
            report["up_exit_code"] = code
            report["load"] = [round(x, 1) for x in os.getloadavg()]
            report["left_behind"] = processes_with(f"DIARIST_DATA_DIR={up.data_dir}")
            report["command"] = " ".join(sys.argv)
            report["data_dir"] = str(base)
        return report
    finally:
        if owned and os.environ.get("SOAK_KEEP") != "1":
            shutil.rmtree(base, ignore_errors=True)


def table(report: dict[str, Any]) -> str:
    def n(value: Any) -> Any:
        return len(value) if isinstance(value, list | set | tuple) else value

    twice = n(report["completed_twice_history"])
    topic_twice = report["completed_twice_topic"]
    rows = [
        ("jobs submitted", report["jobs"], f"accepted {report['accepted']}; {report['apis']}"),
        ("lost (accepted, not listed or 404)", n(report["lost"]), ""),
        ("stuck (not terminal after the drain)", n(report["stuck"]), ""),
        ("completed more than once per attempt", twice,
         "history; topic: " + (str(len(topic_twice)) if topic_twice is not None else "not read")),
        ("5xx answers seen by the client", n(report["server_errors"]),
         f"besides {report['unavailable_retried']} x 503 with Retry-After, retried"),
        ("callbacks lost", n(report["callbacks_lost"]), f"of {report['endings_with_callbacks']} endings"),
        ("lifecycles per second", report["lifecycles_per_second"],
         f"{report['ended']} jobs ended in {report['wall_seconds']} s, {report['audio_seconds']} s of audio"),
    ]
    width = max(len(r[0]) for r in rows)
    out = [f"{name:<{width}}  {value!s:>8}  {note}" for name, value, note in rows]
    out += ["", f"extra jobs (listed, never accepted: a create made twice): {n(report['extra_jobs'])}",
            f"create requests that were never accepted: {n(report['not_accepted'])}; "
            f"creates sent again with their Idempotency-Key: {report['repeated_creates']}",
            f"requests {report['requests']}, statuses {report['http_statuses']}, "
            f"transport errors {report['transport_errors']}, gave up {n(report['gave_up'])}",
            f"callback deliveries repeated {report['callback_repeats']}, unsigned {report['callbacks_unsigned']}, "
            f"of an event that is no ending {report['callbacks_unknown_event']}",
            f"final statuses {report['statuses']}; actions {report['actions']}",
            f"failure reasons {report['failure_reasons']}",
            f"completed jobs' medians (s): {report['timings']}; load average at the end {report.get('load')}",
            f"clips from {report['sources']}",
            f"ERROR/Traceback lines in up's output (startup's included) {report['error_lines']}; "
            f"up exit code {report.get('up_exit_code')}; "
            f"processes left behind {n(report.get('left_behind', []))}",
            "chaos:", *(f"  {line}" for line in report["chaos"]),
            "supervisor:", *(f"  {line}" for line in report["supervisor"])]
    for name in ("lost", "stuck", "extra_jobs", "completed_twice_history", "server_errors", "callbacks_lost",
                 "not_accepted", "gave_up", "left_behind"):
        if report.get(name):
            out += [f"{name}:", *(f"  {item}" for item in list(report[name])[:20])]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.15,
                        help="jobs submitted a second; keep it near what the machine ends, or raise --drain-timeout")
    parser.add_argument("--kills", default="inference,jobs,inference,jobs,inference",
                        help="parts to SIGKILL in turn, comma separated (inference, jobs); '' for none")
    parser.add_argument("--broker-restarts", type=int, default=1)
    parser.add_argument("--drain-timeout", type=float, default=900.0, help="seconds after the last submission")
    parser.add_argument("--callback-timeout", type=float, default=120.0)
    parser.add_argument("--threads", type=int, default=None, help="DIARIST_INFERENCE_THREADS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="work here (clips, data, up.log) and keep it")
    parser.add_argument("--json", type=Path, default=None, help="also write the whole report here")
    args = parser.parse_args()
    config = Config(jobs=args.jobs, rate=args.rate, kills=tuple(k for k in args.kills.split(",") if k),
                    broker_restarts=args.broker_restarts, drain_timeout=args.drain_timeout,
                    callback_timeout=args.callback_timeout, threads=args.threads, seed=args.seed, data_dir=args.keep)
    report = run(config)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    print()
    print(f"$ {report['command']}")
    print(table(report))


if __name__ == "__main__":
    main()
