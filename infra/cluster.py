"""A diarist cluster on one machine: Kafka brokers with one controller quorum, SeaweedFS for the
blobs, jobs workers with their edges and inference workers, every port on loopback.

    python -m diarist.infra.cluster up [--brokers 3] [--jobs-workers 2] [--inference-workers 2]
                                       [--model tiny.en] [--data-dir DIR] [--partitions 6]

prints the endpoints once every edge answers and sees every worker; Ctrl-C (or SIGTERM) stops
the inference workers, the jobs workers, SeaweedFS and the brokers, in that order. It is what a
cluster of machines runs, each part a process of its own with the configuration a machine
would get (docs/deploy.md); the system test (tests/test_cluster.py) and bench/cluster.py start
the same thing through `Cluster`.

Kafka: every node is broker and controller, `controller.quorum.voters` lists them all, and all
are formatted (kafka.tools.StorageTool) with one cluster id. Replication: min(3, brokers)
replicas for every topic, diarist's (infra/topics.py, DIARIST_REPLICATION_FACTOR) and the
broker's own (consumer offsets, transaction state), and min.insync.replicas 2 from three
brokers on: a write acknowledged with acks=all is on two brokers, and the cluster keeps taking
writes with one broker down.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
from confluent_kafka.admin import AdminClient

from diarist.infra.broker import BrokerError, KafkaBroker, _new_cluster_id
from diarist.infra.seaweedfs import SeaweedFS
from diarist.infra.topics import default_min_insync


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (all held open until every one is picked)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class KafkaCluster:
    """N KRaft nodes (broker+controller each) on loopback, one quorum, one cluster id.

    The layout (cluster id, ports) is kept in `data_dir/cluster.json`, so that a cluster started
    again on the same directory is the same cluster.
    """

    def __init__(self, data_dir: Path, brokers: int = 3, heap: str = "512m") -> None:
        if brokers < 1:
            raise ValueError("a cluster needs at least one broker")
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        layout_file = self.data_dir / "cluster.json"
        if layout_file.is_file():
            layout = json.loads(layout_file.read_text())
            if len(layout["ports"]) != brokers:
                raise BrokerError(f"{layout_file} holds a cluster of {len(layout['ports'])} brokers, not {brokers}")
        else:
            ports = free_ports(2 * brokers)
            layout = {"cluster_id": _new_cluster_id(), "ports": [ports[2 * i:2 * i + 2] for i in range(brokers)]}
            layout_file.write_text(json.dumps(layout) + "\n")
        self.cluster_id: str = layout["cluster_id"]
        self.replication_factor = min(3, brokers)
        self.min_insync_replicas = default_min_insync(self.replication_factor)
        voters = ",".join(f"{i + 1}@127.0.0.1:{cport}" for i, (_, cport) in enumerate(layout["ports"]))
        config = {
            # Topics made by anyone but diarist (none should be: auto-create is off) and the broker's own.
            "default.replication.factor": str(self.replication_factor),
            "min.insync.replicas": str(self.min_insync_replicas),
            "offsets.topic.replication.factor": str(self.replication_factor),
            "transaction.state.log.replication.factor": str(self.replication_factor),
            "transaction.state.log.min.isr": str(self.min_insync_replicas),
        }
        self.nodes = [KafkaBroker(self.data_dir / f"broker-{i + 1}", port=port, controller_port=cport, heap=heap,
                                  node_id=i + 1, voters=voters, cluster_id=self.cluster_id, config=config)
                      for i, (port, cport) in enumerate(layout["ports"])]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def start(self, timeout: float = 120.0) -> None:
        """Starts every node, and returns once each answers and the metadata lists them all."""
        try:
            for node in self.nodes:  # a node answers only once a majority of the voters runs
                node.launch()
            for node in self.nodes:
                node.wait_ready(timeout)
            self.wait_brokers(len(self.nodes), timeout)
        except BaseException:
            self.stop()
            raise

    def wait_brokers(self, count: int, timeout: float = 60.0) -> None:
        """Until the cluster's metadata lists `count` live brokers."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "logger": _quiet})
        deadline = time.monotonic() + timeout
        while True:
            try:
                if len(admin.list_topics(timeout=5).brokers) == count:
                    return
            except Exception:  # noqa: BLE001 - a node still starting
                pass
            if time.monotonic() > deadline:
                raise BrokerError(f"the cluster did not list {count} brokers within {timeout:.0f} s")
            time.sleep(0.2)

    def kill(self, node_id: int) -> None:
        """SIGKILL one node, as a crash would."""
        self.nodes[node_id - 1].kill()

    def restart(self, node_id: int, timeout: float = 90.0) -> None:
        self.nodes[node_id - 1].start(timeout)

    def stop(self) -> None:
        for node in self.nodes:
            node.terminate()
        for node in self.nodes:
            node.stop()


class _Quiet:
    """A logger for librdkafka that drops its lines (connection refused while a node starts or is down)."""

    def log(self, *args: object) -> None:
        pass


_quiet = _Quiet()


@dataclass
class Part:
    """One diarist process of the cluster: a jobs worker with its edge, or an inference worker."""

    name: str
    role: str  # "worker" or "inference"
    env: dict[str, str]
    data_dir: Path
    url: str | None = None  # the edge (jobs workers)
    metrics_url: str | None = None  # an inference worker's /metrics
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_file(self) -> Path:
        return self.data_dir / "process.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            # -P: a working directory holding a checkout must not shadow the installed package.
            # A session of its own: a kill reaches its engine child too, and Ctrl-C reaches the script first.
            self.process = subprocess.Popen([sys.executable, "-P", "-m", "diarist.cli", self.role], env=self.env,
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def kill(self) -> None:
        """SIGKILL the process and its children (the inference engine), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 30.0) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


class Cluster:
    """Brokers, SeaweedFS, jobs workers and inference workers, as `up` runs them.

    `env` goes to every diarist process last (DIARIST_SESSION_TIMEOUT, DIARIST_URL_ALLOW, ...).
    """

    def __init__(self, data_dir: Path, brokers: int = 3, jobs_workers: int = 2, inference_workers: int = 2,
                 model: str = "tiny.en", namespace: str = "diarist", partitions: int = 6, api_key: str | None = None,
                 inference_threads: int | None = None, env: Mapping[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.kafka = KafkaCluster(self.data_dir / "kafka", brokers)
        self.s3 = SeaweedFS(self.data_dir / "seaweedfs")
        self.namespace = namespace
        self.partitions = partitions
        key_file = self.data_dir / "api-key"
        if api_key is None:
            if not key_file.is_file():
                key_file.write_text(secrets.token_urlsafe(24) + "\n")
            api_key = key_file.read_text().strip()
        self.api_key = api_key
        threads = inference_threads or max(1, (os.cpu_count() or 2) // max(1, inference_workers))
        common = {
            "DIARIST_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers, "DIARIST_NAMESPACE": namespace,
            "DIARIST_PARTITIONS": str(partitions), "DIARIST_API_KEYS": api_key, "DIARIST_MODEL": model,
            "DIARIST_REPLICATION_FACTOR": str(self.kafka.replication_factor),
            "DIARIST_MIN_INSYNC_REPLICAS": str(self.kafka.min_insync_replicas),
            "DIARIST_HOST": "127.0.0.1", "DIARIST_INFERENCE_THREADS": str(threads), **self.s3.env,
        }
        ports = free_ports(jobs_workers + inference_workers)
        self.parts: list[Part] = []
        for i in range(jobs_workers):
            url = f"http://127.0.0.1:{ports[i]}"
            self.parts.append(self._part(f"jobs-{i + 1}", "worker", common, env, url=url, DIARIST_PORT=str(ports[i]),
                                         DIARIST_ADVERTISED_URL=url))
        for i in range(inference_workers):
            port = ports[jobs_workers + i]
            self.parts.append(self._part(f"inference-{i + 1}", "inference", common, env,
                                         metrics_url=f"http://127.0.0.1:{port}/metrics",
                                         DIARIST_INFERENCE_METRICS_PORT=str(port)))

    def _part(self, name: str, role: str, common: dict[str, str], env: Mapping[str, str] | None,
              url: str | None = None, metrics_url: str | None = None, **own: str) -> Part:
        data_dir = self.data_dir / name
        # Unbuffered: the last lines of a part that is SIGKILLed reach its log.
        part_env = {**os.environ, **common, "DIARIST_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1",
                    **own, **(env or {})}
        return Part(name, role, part_env, data_dir, url=url, metrics_url=metrics_url)

    @property
    def edges(self) -> list[Part]:
        return [part for part in self.parts if part.role == "worker"]

    @property
    def inference(self) -> list[Part]:
        return [part for part in self.parts if part.role == "inference"]

    def part(self, name: str) -> Part:
        return next(part for part in self.parts if part.name == name)

    def start(self, timeout: float = 300.0, only: Collection[str] | None = None) -> None:
        """Starts everything (of the diarist processes, those named in `only`) and returns once
        every edge is healthy and sees every worker started."""
        deadline = time.monotonic() + timeout
        try:
            self.kafka.start()
            self.s3.start()
            # Each worker creates the topics at its start (DIARIST_REPLICATION_FACTOR), as on machines of their own.
            for part in self.parts:
                if only is None or part.name in only:
                    part.start()
            self.wait_ready(max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float = 180.0, jobs_workers: int | None = None,
                   inference_workers: int | None = None) -> None:
        """Until every edge answers /healthz with 200 and lists the jobs and inference workers running."""
        want_jobs = len([p for p in self.edges if p.alive]) if jobs_workers is None else jobs_workers
        want_inference = len([p for p in self.inference if p.alive]) if inference_workers is None else inference_workers
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            for part in self.parts:
                if part.process is not None and part.process.poll() is not None and part.process.returncode > 0:
                    raise RuntimeError(f"{part.name} exited with {part.process.returncode}:\n{part.log_tail()}")
            ready = 0
            for edge in self.edges:
                if not edge.alive:
                    continue
                try:
                    answer = httpx.get(f"{edge.url}/healthz", timeout=5)
                except httpx.HTTPError as exc:
                    last = f"{edge.name}: {exc}"
                    continue
                health = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
                loaded = [w for w in health.get("inference_workers", []) if w.get("loaded")]
                # Without inference workers, no model is loaded anywhere: every other check must pass.
                checks = {k: v for k, v in health.get("checks", {}).items() if want_inference or k != "model_loaded"}
                if (checks and all(checks.values()) and len(health.get("jobs_workers", [])) == want_jobs
                        and len(loaded) >= want_inference):
                    ready += 1
                else:
                    last = f"{edge.name}: {answer.status_code} {answer.text[:300]}"
            if ready == want_jobs:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster was not ready within {timeout:.0f} s; last: {last}")
            time.sleep(0.5)

    def stop(self) -> None:
        """Inference workers, jobs workers, SeaweedFS, then the brokers."""
        for part in reversed(self.parts):
            part.stop()
        self.s3.stop()
        self.kafka.stop()

    def endpoints(self) -> str:
        k = self.kafka
        lines = [f"Kafka        {k.bootstrap_servers}  ({len(k.nodes)} brokers, KRaft quorum of {len(k.nodes)}, "
                 f"replication factor {k.replication_factor}, min.insync.replicas {k.min_insync_replicas})",
                 f"S3           {self.s3.endpoint_url}  bucket {self.s3.bucket}, key {self.s3.access_key} / "
                 f"{self.s3.secret_key}"]
        for part in self.parts:
            where = part.url or f"metrics {part.metrics_url}"
            lines.append(f"{part.name:<12} {where}  (pid {part.pid}, log {part.log_file})")
        lines += [f"API key      {self.api_key}", f"namespace    {self.namespace}, {self.partitions} partitions",
                  f"data in      {self.data_dir}"]
        return "\n".join(lines)

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _up(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir).resolve() if args.data_dir else Path(tempfile.mkdtemp(prefix="diarist-cluster-"))
    cluster = Cluster(data_dir, brokers=args.brokers, jobs_workers=args.jobs_workers,
                      inference_workers=args.inference_workers, model=args.model, namespace=args.namespace,
                      partitions=args.partitions, inference_threads=args.inference_threads)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    print(f"starting {args.brokers} Kafka brokers, SeaweedFS, {args.jobs_workers} jobs workers and "
          f"{args.inference_workers} inference workers in {data_dir} ...", flush=True)
    try:
        cluster.start()
        print(cluster.endpoints(), "\nCtrl-C stops everything", sep="\n", flush=True)
        reported: set[str] = set()
        while True:
            time.sleep(1.0)
            for part in cluster.parts:  # no restarts: in a cluster that is the orchestrator's job
                if part.name not in reported and not part.alive:
                    reported.add(part.name)
                    print(f"{part.name} exited ({part.process and part.process.returncode}); "
                          f"see {part.log_file}", flush=True)
            for node in cluster.kafka.nodes:
                name = f"broker-{node.node_id}"
                if name not in reported and node.poll() is not None:
                    reported.add(name)
                    print(f"{name} exited ({node.poll()}); see {node.log_file}", flush=True)
    except KeyboardInterrupt:
        print("stopping ...", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave JVMs behind
        cluster.stop()
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
        print("stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m diarist.infra.cluster", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the cluster and print its endpoints; Ctrl-C stops it")
    up.add_argument("--brokers", type=int, default=3)
    up.add_argument("--jobs-workers", type=int, default=2)
    up.add_argument("--inference-workers", type=int, default=2)
    up.add_argument("--model", default="tiny.en", help="the inference workers' default model (DIARIST_MODEL)")
    up.add_argument("--partitions", type=int, default=6, help="partitions of each topic (DIARIST_PARTITIONS)")
    up.add_argument("--namespace", default="diarist")
    up.add_argument("--inference-threads", type=int, default=None,
                    help="threads of each inference worker (default: cores / inference workers)")
    up.add_argument("--data-dir", help="keep everything here, and start the same cluster again from it "
                                       "(default: a temporary directory, removed at the end)")
    args = parser.parse_args(argv)
    _up(args)


if __name__ == "__main__":
    main()
