"""Real-broker tests for diarist.infra.broker and diarist.infra.topics (no mocks)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from diarist.infra.broker import BrokerError, KafkaBroker
from diarist.infra.cluster import free_ports
from diarist.infra.topics import TopicError, TopicSpec, ensure_topics

pytestmark = pytest.mark.system

def new_broker(data_dir: Path) -> KafkaBroker:
    port, cport = free_ports(2)
    return KafkaBroker(data_dir, port=port, controller_port=cport)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    with new_broker(tmp_path_factory.mktemp("kafka")) as b:
        yield b


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    b = new_broker(tmp_path / "kafka")
    b.start()
    yield b
    b.stop()


def test_ensure_topics_creates_partitions_and_compaction(broker: KafkaBroker) -> None:
    specs = [TopicSpec("jobs", 6), TopicSpec("job-state", 3, compacted=True, config={"min.compaction.lag.ms": "1000"})]
    ensure_topics(broker.bootstrap_servers, specs)

    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    md = admin.list_topics(timeout=10)
    assert len(md.topics["jobs"].partitions) == 6
    assert len(md.topics["job-state"].partitions) == 3
    resources = [ConfigResource(ResourceType.TOPIC, t) for t in ("jobs", "job-state")]
    configs = {r.name: f.result(10) for r, f in admin.describe_configs(resources).items()}
    assert configs["job-state"]["cleanup.policy"].value == "compact"
    assert configs["job-state"]["min.compaction.lag.ms"].value == "1000"
    assert configs["jobs"]["cleanup.policy"].value == "delete"

    ensure_topics(broker.bootstrap_servers, specs)  # idempotent

    with pytest.raises(TopicError, match="jobs has 6 partitions, expected 4"):
        ensure_topics(broker.bootstrap_servers, [TopicSpec("jobs", 4)])


def test_topics_are_not_auto_created(broker: KafkaBroker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    md = admin.list_topics(topic="never-created", timeout=10)
    assert md.topics["never-created"].error is not None
    assert "never-created" not in admin.list_topics(timeout=10).topics


def test_start_fails_clearly_when_port_taken(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        b = KafkaBroker(tmp_path, port=s.getsockname()[1], controller_port=free_ports(1)[0])
        with pytest.raises(BrokerError, match="already in use"):
            b.start()
    assert not b.running


def test_start_reports_broker_log_when_jvm_exits(tmp_path: Path) -> None:
    b = new_broker(tmp_path)
    b.heap = "not-a-size"
    with pytest.raises(BrokerError, match="(?s)exited with code.*Invalid maximum heap size"):
        b.start()
    assert not b.running


N = 500


def produce(bootstrap: str, topic: str) -> int:
    acked = 0

    def on_delivery(err: object, msg: object) -> None:
        nonlocal acked
        if err is None:
            acked += 1

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(N):
        p.produce(topic, key=str(i % 17), value=str(i), on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(30) == 0
    return acked


def consume_all(bootstrap: str, topic: str, partitions: int, timeout: float = 30.0) -> set[str]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-reader", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        while len(seen) < N and time.monotonic() < deadline:
            for m in c.consume(num_messages=N, timeout=0.5):
                if m.error() is None:
                    seen.add(m.value().decode())
        return seen
    finally:
        c.close()


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_restart_loses_no_acknowledged_event(own_broker: KafkaBroker, how: str) -> None:
    ensure_topics(own_broker.bootstrap_servers, [TopicSpec("events", 3)])
    assert produce(own_broker.bootstrap_servers, "events") == N

    getattr(own_broker, how)()  # SIGKILL, as a crash; or SIGTERM, a controlled shutdown
    assert not own_broker.running
    own_broker.start()

    assert consume_all(own_broker.bootstrap_servers, "events", 3) == {str(i) for i in range(N)}


def test_restart_formats_only_once(own_broker: KafkaBroker) -> None:
    meta = own_broker.log_dir / "meta.properties"
    cluster_id, meta_before = own_broker.cluster_id, meta.read_text()
    assert cluster_id and f"cluster.id={cluster_id}" in meta_before

    own_broker.stop()
    own_broker.stop()  # idempotent
    own_broker.start()

    # A re-format would write a fresh random directory.id into meta.properties.
    assert own_broker.cluster_id == cluster_id
    assert meta.read_text() == meta_before
    AdminClient({"bootstrap.servers": own_broker.bootstrap_servers}).list_topics(timeout=10)
