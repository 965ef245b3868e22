"""Run an Apache Kafka node (KRaft, broker+controller) as a local child process.

Alone it is the embedded single-node broker of the tests and of `diarist up`; several of them
with one controller quorum and one cluster id make a cluster on one machine (infra/cluster.py).
Nothing but Java and Maven has to be installed: the broker jars are resolved from Maven Central
once and cached.
"""

from __future__ import annotations

import atexit
import base64
import importlib.resources
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

KAFKA_VERSION = "3.9.1"  # must match infra/kafka/pom.xml

_MARKER = ".complete"
_log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The broker (or the tooling it needs) could not be set up, started or reached."""


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise BrokerError(f"`{tool}` was not found on PATH; the local Kafka broker needs Java 17+ and Maven")
    return path


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _default_cache_dir() -> Path:
    env = os.environ.get("DIARIST_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "diarist"


def resolve_classpath(cache_dir: Path | None = None) -> Path:
    """Return a directory holding the Kafka broker jars, downloading them with Maven on first use.

    `cache_dir` defaults to `$DIARIST_CACHE_DIR` or `~/.cache/diarist`; the jars land in
    `<cache_dir>/kafka-<KAFKA_VERSION>/libs`.
    """
    libs = (cache_dir or _default_cache_dir()) / f"kafka-{KAFKA_VERSION}" / "libs"
    if (libs / _MARKER).is_file():
        return libs
    mvn = _require("mvn")
    _require("java")
    libs.parent.mkdir(parents=True, exist_ok=True)
    # Build next to the target and publish with one rename, so a concurrent or interrupted
    # resolve never leaves a half-filled libs directory that looks complete.
    tmp = Path(tempfile.mkdtemp(prefix=".libs-", dir=libs.parent))
    try:
        out = tmp / "libs"
        # Maven may write into the pom's directory, which can be a read-only site-packages.
        pom = tmp / "pom.xml"
        pom.write_bytes((importlib.resources.files("diarist.infra") / "kafka" / "pom.xml").read_bytes())
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={out}", "-DincludeScope=runtime"]
        _log.info("resolving Kafka %s jars with Maven into %s", KAFKA_VERSION, libs)
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"Maven did not finish resolving Kafka {KAFKA_VERSION} in 900 s") from exc
        if proc.returncode != 0 or not any(out.glob("kafka_2.13-*.jar")):
            raise BrokerError(
                f"Maven failed to resolve Kafka {KAFKA_VERSION} (exit {proc.returncode}):\n"
                + _tail(proc.stdout + proc.stderr)
            )
        (out / _MARKER).write_text(KAFKA_VERSION + "\n")
        if libs.exists() and not (libs / _MARKER).is_file():
            shutil.rmtree(libs)  # leftover without marker from an older, non-atomic layout
        try:
            out.rename(libs)
        except OSError:
            if not (libs / _MARKER).is_file():  # losing a race to another resolver is fine
                raise
        return libs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Java binds with SO_REUSEADDR too, so ports in TIME_WAIT after a restart count as free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _new_cluster_id() -> str:
    # Same format as `StorageTool random-uuid` (base64url of 16 random bytes), without a JVM start.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):  # Kafka rejects ids that look like command-line flags
            return cid


# What a single node needs: its internal topics cannot have more replicas than there are brokers.
SINGLE_NODE = {
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
}


class KafkaBroker:
    """A KRaft Kafka node (broker and controller) whose data lives in `data_dir` and survives restarts.

    By default a cluster of its own (node 1, the only voter, a cluster id made at the first
    start). As one node of several, give each its `node_id`, the same `voters`
    ("1@127.0.0.1:9093,2@...": every controller's id and controller address) and the same
    `cluster_id`; `config` adds or overrides server properties (replication defaults).
    """

    def __init__(self, data_dir: Path, port: int = 9092, controller_port: int | None = None, heap: str = "512m",
                 node_id: int = 1, voters: str | None = None, cluster_id: str | None = None,
                 config: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.controller_port = port + 1 if controller_port is None else controller_port
        self.heap = heap
        self.node_id = node_id
        self.voters = voters or f"{node_id}@127.0.0.1:{self.controller_port}"
        self._cluster_id = cluster_id
        self.config = SINGLE_NODE if config is None else config
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The JVM's process id, from its start until stop() (also once it died)."""
        return self._proc.pid if self._proc is not None else None

    def poll(self) -> int | None:
        """The JVM's exit code once it ended on its own; None while it runs or when not started.
        With `pid` and `stop`, what a supervisor needs of a child (cli/supervisor.py)."""
        return self._proc.poll() if self._proc is not None else None

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def cluster_id(self) -> str | None:
        path = self.data_dir / "cluster.id"
        return path.read_text().strip() if path.is_file() else None

    def _write_properties(self) -> Path:
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "group.initial.rebalance.delay.ms": "0",
            # After a crash the controller refuses the restarted broker's registration until the old
            # session expires (DUPLICATE_BROKER_REGISTRATION); half the defaults (2 s / 9 s), same ratio.
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "4500",
            # The project creates its topics itself (with the right partition counts).
            "auto.create.topics.enable": "false",
            **self.config,
        }
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _java(self, libs: Path, *args: str, jvm: tuple[str, ...] = ()) -> list[str]:
        return [_require("java"), *jvm, "-cp", str(libs / "*"), *args]

    def _format_once(self, libs: Path, config: Path) -> None:
        if (self.log_dir / "meta.properties").is_file():
            return
        cid_file = self.data_dir / "cluster.id"
        if not cid_file.is_file():
            cid_file.write_text((self._cluster_id or _new_cluster_id()) + "\n")
        elif self._cluster_id is not None and self.cluster_id != self._cluster_id:
            raise BrokerError(f"{cid_file} names cluster {self.cluster_id}, not {self._cluster_id}")
        cmd = self._java(libs, "kafka.tools.StorageTool", "format", "-t", self.cluster_id or "", "-c", str(config))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BrokerError(f"formatting {self.log_dir} failed (exit {proc.returncode}):\n{_tail(proc.stdout + proc.stderr)}")

    def _broker_log_tail(self) -> str:
        try:
            with self.log_file.open("rb") as f:
                f.seek(self._log_offset)
                return _tail(f.read().decode(errors="replace"))
        except OSError:
            return "(no broker log)"

    def start(self, timeout: float = 90.0) -> None:
        """Start the broker and return once it answers metadata requests.

        `timeout` covers the broker start only, not a first-time download of the jars. A node of
        several answers only once a majority of the voters runs: start them all with launch(),
        then wait_ready() each.
        """
        if self.running:
            return
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the JVM (formatting the log directory the first time) without waiting for it."""
        if self.running:
            return
        for p in (self.port, self.controller_port):
            if not _port_free(p):
                raise BrokerError(f"port {p} on 127.0.0.1 is already in use; cannot start Kafka there")
        libs = resolve_classpath()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_properties()
        self._format_once(libs, config)
        # A copy next to the data, so the JVM never depends on an extracted package resource.
        l4j = self.data_dir / "log4j.properties"
        l4j.write_text((importlib.resources.files("diarist.infra") / "kafka" / "log4j.properties").read_text())
        cmd = self._java(libs, "kafka.Kafka", str(config), jvm=(f"-Dlog4j.configuration=file:{l4j}", f"-Xmx{self.heap}"))
        with self.log_file.open("ab") as log:
            self._log_offset = log.tell()
            # Own session: a Ctrl-C in the terminal reaches Python first, which then stops the
            # broker cleanly instead of the JVM dying mid-write.
            self._proc = subprocess.Popen(cmd, cwd=self.data_dir, stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        atexit.register(self.stop)

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Return once the launched broker answers metadata requests; stop it when it does not."""
        try:
            self._wait_ready(timeout)
        except BaseException:  # includes Ctrl-C while waiting: never leave a half-started JVM behind
            self.stop(timeout=5.0)
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        admin = AdminClient({
            "bootstrap.servers": self.bootstrap_servers,
            # librdkafka backs off up to 10 s between reconnects by default; the JVM needs a few.
            "reconnect.backoff.ms": 100,
            "reconnect.backoff.max.ms": 500,
            "logger": _log,  # keeps "connection refused" noise off stderr while the JVM boots
        })
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"Kafka broker exited with code {self._proc.returncode} during start; "
                    f"{self.log_file} ends with:\n{self._broker_log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(
                    f"Kafka broker on {self.bootstrap_servers} not ready after {timeout:.0f} s; "
                    f"{self.log_file} ends with:\n{self._broker_log_tail()}"
                )
            try:
                if admin.list_topics(timeout=min(remaining, 1.0)).brokers:
                    return
            except KafkaException:  # until the listener is up
                time.sleep(0.1)

    def terminate(self) -> None:
        """Send SIGTERM and return at once: the nodes of a cluster stop together, as the last of
        them to stop alone would wait for a controller quorum that is gone. stop() then waits."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop with SIGTERM (controlled shutdown, logs flushed); SIGKILL only after `timeout`."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _log.warning("Kafka broker did not stop within %.0f s; killing it", timeout)
                proc.kill()
                proc.wait()
        # Only forgotten once it is gone, so an interrupted stop still gets retried at exit.
        self._proc = None
        atexit.unregister(self.stop)

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would (for fault tests)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()
        self._proc = None
        atexit.unregister(self.stop)

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
