"""The `diarist` command: run the service on one machine, its parts one by one, or submit a file."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from diarist.infra.settings import Settings

if TYPE_CHECKING:
    from diarist.cli.supervisor import Child


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings().with_overrides(
        data_dir=Path(args.data_dir).resolve() if getattr(args, "data_dir", None) else None,
        port=getattr(args, "port", None), model=getattr(args, "model", None),
        bootstrap_servers=getattr(args, "bootstrap_servers", None))
    try:
        settings.url_allow()  # a bad entry stops every part at startup, not the first fetch
    except ValueError as exc:
        sys.exit(f"diarist: {exc}")
    return settings


def _ensure_topics(settings: Settings) -> None:
    from diarist.infra.topics import ensure_topics
    from diarist.streams.topics import topic_specs

    ensure_topics(settings.bootstrap, topic_specs(settings), replication_factor=settings.replication_factor,
                  min_insync_replicas=settings.min_insync_replicas)


def _use_schema_registry(settings: Settings) -> None:
    """With DIARIST_SCHEMA_REGISTRY_URL, registers the schemas there and writes with its ids."""
    if settings.schema_registry_url:
        from diarist.schemas.external import use_registry

        use_registry(settings.schema_registry_url)


def _logging_config(settings: Settings) -> dict | None:
    """DIARIST_LOG_FORMAT's logging configuration (infra/logs.py), applied now for what is logged
    before Faust starts, and handed to Faust, which configures logging again when its worker starts."""
    import logging.config

    from diarist.infra.logs import level_number, logging_config

    try:
        config = logging_config(settings.log_format, settings.log_level)
    except ValueError as exc:
        sys.exit(f"diarist: {exc}")
    if config is not None:
        logging.config.dictConfig(config)
    else:
        logging.basicConfig(level=level_number(settings.log_level))
    return config


def _run_faust(app, settings: Settings, logging_config: dict | None = None) -> None:
    import faust

    faust.Worker(app, loglevel=settings.log_level, quiet=True, logging_config=logging_config).execute_from_commandline()


def cmd_worker(args: argparse.Namespace) -> None:
    """The jobs worker with its edge."""
    from diarist.api.server import serve_edge_in
    from diarist.streams.jobs.worker import JobsWorker

    settings = _settings(args)
    logging_config = _logging_config(settings)
    _ensure_topics(settings)
    _use_schema_registry(settings)
    worker = JobsWorker(settings)
    serve_edge_in(worker)
    _run_faust(worker.app, settings, logging_config)


def cmd_inference(args: argparse.Namespace) -> None:
    """An inference worker."""
    from diarist.streams.inference.worker import InferenceWorker

    settings = _settings(args)
    logging_config = _logging_config(settings)
    _ensure_topics(settings)
    _use_schema_registry(settings)
    worker = InferenceWorker(settings)
    if settings.inference_metrics_port:
        from diarist.streams import metrics

        metrics.count_dead_letters(getattr(worker, "dead_letters", None))
        metrics.serve_inference_metrics(settings.inference_metrics_port, settings.host)
    _run_faust(worker.app, settings, logging_config)


def cmd_up(args: argparse.Namespace) -> None:
    """Broker, jobs worker with edge, and inference on this machine, restarted when one dies;
    Ctrl-C stops it all."""
    from diarist.cli.supervisor import Supervisor
    from diarist.infra.broker import BrokerError

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = sorted(settings.api_keys())[0]
    supervisor = Supervisor(_up_children(settings), settings.supervisor_state_file)
    supervisor.handle_signals()
    announced = False

    def announce_once_healthy() -> None:
        nonlocal announced
        if not announced and _healthy(settings):
            announced = True
            print(f"diarist is up: {settings.advertised_url}  (API key: {key})\n"
                  f"data in {settings.data_dir}; Ctrl-C stops everything", flush=True)

    try:
        supervisor.run(tick=announce_once_healthy)
    except BrokerError as exc:
        sys.exit(f"could not start Kafka: {exc}")
    print("diarist stopped", flush=True)


def _up_children(settings: Settings) -> list[Child]:
    """What `diarist up` runs: the embedded broker (unless DIARIST_BOOTSTRAP_SERVERS names a
    cluster), then the jobs worker with its edge, then an inference worker."""
    from diarist.cli.supervisor import Child, Subprocess
    from diarist.infra.broker import KafkaBroker

    children = []
    if settings.bootstrap_servers:
        _ensure_topics(settings)
    else:
        broker = KafkaBroker(settings.data_dir / "kafka", port=settings.broker_port)

        def start_broker() -> KafkaBroker:
            print(f"starting Kafka on {broker.bootstrap_servers} ...", flush=True)
            broker.start()
            try:
                _ensure_topics(settings)
            except BaseException:
                broker.stop()
                raise
            return broker

        children.append(Child("Kafka broker", start_broker))
    env = {**os.environ, "DIARIST_DATA_DIR": str(settings.data_dir), "DIARIST_PORT": str(settings.port),
           "DIARIST_MODEL": settings.model, "DIARIST_BOOTSTRAP_SERVERS": settings.bootstrap}
    for name, role in (("jobs worker", "worker"), ("inference worker", "inference")):
        # -P: a working directory holding a checkout must not shadow the installed package.
        command = [sys.executable, "-P", "-m", "diarist.cli", role]
        children.append(Child(name, lambda command=command: Subprocess(command, env)))
    return children


def _healthy(settings: Settings) -> bool:
    import httpx

    try:
        return httpx.get(f"{settings.advertised_url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def cmd_submit(args: argparse.Namespace) -> None:
    from diarist.cli.submit import submit

    sys.exit(submit(args))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="diarist", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, fun in (("up", cmd_up), ("worker", cmd_worker), ("inference", cmd_inference)):
        sub = commands.add_parser(name, help=fun.__doc__)
        sub.add_argument("--data-dir", help="where state, media and results live (DIARIST_DATA_DIR)")
        sub.add_argument("--port", type=int, help="HTTP port of the edge (DIARIST_PORT)")
        sub.add_argument("--model", help="default model: base or tiny.en (DIARIST_MODEL)")
        sub.add_argument("--bootstrap-servers", help="use this Kafka cluster (DIARIST_BOOTSTRAP_SERVERS)")
        sub.set_defaults(fun=fun)
    sub = commands.add_parser("submit", help="post a media file as a job; --wait prints the transcript")
    sub.add_argument("file", type=Path)
    sub.add_argument("--wait", action="store_true", help="show progress and print the transcript")
    sub.add_argument("--url", default=None, help="the edge (default http://127.0.0.1:$DIARIST_PORT)")
    sub.add_argument("--key", default=None, help="API key (default: DIARIST_API_KEYS or the data directory's)")
    sub.add_argument("--options", default=None, help="job options as JSON")
    sub.add_argument("--data-dir", help="where to find the API key")
    sub.set_defaults(fun=cmd_submit)
    args = parser.parse_args(argv)
    args.fun(args)
