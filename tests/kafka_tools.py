"""Reading and writing the service's topics directly, as other teams' consumers and producers do."""
from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition

from diarist.schemas import codec


def read_all(bootstrap: str, topic: str) -> list[tuple[str, str, dict]]:
    """Every message now in the topic as (key, schema name, record), in offset order per partition."""
    return [(key.decode(), *codec().decode(value)) for key, value, _ in read_raw(bootstrap, topic)]


def produce(bootstrap: str, topic: str, key: str, name: str, record: dict) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce(topic, key=key.encode(), value=codec().encode(name, record))
    assert producer.flush(10) == 0


def produce_raw(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> None:
    """Sends (key, value) pairs as they are, bytes the codec never saw, in order, in one batch."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 100})
    for key, value in messages:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(10) == 0


def read_raw(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None, dict[str, bytes]]]:
    """Every message now in the topic as (key, value, headers), undecoded, in offset order per partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests-reader", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        out = []
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, p, low)])
            seen = low
            while seen < high:
                message = consumer.poll(5)
                if message is None or message.error():
                    continue
                seen = message.offset() + 1
                out.append((message.key(), message.value(), dict(message.headers() or [])))
        return out
    finally:
        consumer.close()
