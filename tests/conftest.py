"""Shared fixtures: one real Kafka broker for the session, generated speech, running services."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from diarist.infra.broker import KafkaBroker
from diarist.infra.seaweedfs import SeaweedFS

from .audio import SENTENCES, long_text, speak
from .service import Service, free_port

_namespaces = itertools.count()


TIERS = ("unit", "system")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tiers = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
        if len(tiers) != 1:
            raise pytest.UsageError(f"{item.nodeid} must be marked with exactly one tier of {TIERS}, not {tiers}")


@pytest.fixture(autouse=True)
def _unit_tests_use_no_broker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("unit") and "kafka" in request.fixturenames:
        pytest.fail("a unit test asked for the Kafka broker: mark it system")
    if request.node.get_closest_marker("unit") and "seaweedfs" in request.fixturenames:
        pytest.fail("a unit test asked for the S3 server: mark it system")


@pytest.fixture(scope="session")
def kafka(tmp_path_factory) -> KafkaBroker:
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"), port=free_port(), controller_port=free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory) -> SeaweedFS:
    """A real S3 server for the session (SeaweedFS's `weed mini`, every port free and on loopback)."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> tuple[Path, str]:
    """A short English recording and its text."""
    text = " ".join(SENTENCES[:3])
    return speak(text, tmp_path_factory.mktemp("audio") / "speech.wav"), text


@pytest.fixture(scope="session")
def long_speech(tmp_path_factory) -> Path:
    """About a minute of English: long enough to act on a job while it runs."""
    return speak(long_text(60), tmp_path_factory.mktemp("audio") / "long.wav")


@pytest.fixture(scope="module")
def fence_log(tmp_path_factory) -> Path:
    """Where fenced processes (service.fenced) write each connection they refused: one per module."""
    log = tmp_path_factory.mktemp("fence") / "fence.log"
    log.touch()
    return log


def new_service(tmp_path_factory, kafka: KafkaBroker, name: str) -> Service:
    return Service(tmp_path_factory.mktemp(name), kafka.bootstrap_servers, f"t{next(_namespaces)}-{name}")


def running_service(tmp_path_factory, kafka: KafkaBroker, name: str, **env: str):
    """The jobs worker with its edge, and one inference worker, on the session's broker."""
    service = new_service(tmp_path_factory, kafka, name)
    service.env.update(env)
    service.start("worker")
    service.start("inference")
    try:
        service.wait_healthy()
        yield service
    finally:
        service.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory, kafka):
    """A service shared by a module's tests that leave it as they found it."""
    yield from running_service(tmp_path_factory, kafka, "svc")


@pytest.fixture
def fresh_service(tmp_path_factory, kafka):
    """A service of the test's own, for tests that kill or restart parts of it."""
    yield from running_service(tmp_path_factory, kafka, "own")
