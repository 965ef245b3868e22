"""Poison messages: what the dead-letter helper calls poison, and the service skipping it for real."""
from __future__ import annotations

import logging
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka.errors import KafkaTimeoutError

from diarist.schemas import codec
from diarist.schemas.codec import HEADER
from diarist.streams import deadletters as dl
from diarist.streams.blobs import LocalBlobStore
from diarist.streams.deadletters import DeadLetters, Kind, Source
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.index import JobIndex
from diarist.streams.jobs.store import JobStore, job_id_for_request

from .kafka_tools import produce, produce_raw, read_raw
from .service import submit, until_status, wait_for_job

MEDIA = "diarist.MediaSubmitted"


class FakeSender:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.sent: list[tuple[bytes | None, bytes | None, dl.Headers]] = []
        self.fail = fail

    async def __call__(self, key: bytes | None, value: bytes | None, headers: dl.Headers) -> None:
        if self.fail:
            raise self.fail
        self.sent.append((key, value, headers))


def source(value: bytes | None, key: bytes | None = b"k", offset: int = 7,
           headers: tuple[tuple[str, bytes], ...] = ()) -> Source:
    return Source("ns.job-events", 2, offset, key, value, headers)


def spec(key: str = "media/j1") -> dict:
    return {"filename": "a.wav", "media": {"key": key, "md5": "0" * 32, "size": 1, "content_type": None},
            "options": {"tag": None, "language": None, "model": None, "callback_urls": [], "metadata": None}}


def created(job_id: str = "j1", key: str = "media/j1") -> lc.Event:
    return lc.make_event(job_id, 1, spec=spec(key))


def garbage_after_header(name: str) -> bytes:
    """A valid Confluent header naming a real schema, then a body that is not Avro of it."""
    return HEADER.pack(0, codec().schema_id(name)) + b"\x02"


async def ignore(name: str, record: dict) -> None:
    pass


@pytest.mark.unit
@pytest.mark.parametrize("value, error", [
    (os.urandom(64), None),  # any exception of the codec
    (garbage_after_header(MEDIA), "EOFError"),
    (HEADER.pack(0, 9999) + b"\x00", "SchemaError: unknown schema id 9999"),
    (b"\x07\x00\x00\x00\x01", "SchemaError: unknown magic byte 7"),
    (b"", "SchemaError"),
    (None, "TypeError"),  # a tombstone
    (HEADER.pack(0, codec().schema_id(MEDIA)) + b"\x02\xa9", "UnicodeDecodeError"),
])
async def test_what_the_codec_cannot_read_is_decode_poison(value, error):
    sender, applied = FakeSender(), []
    letters = DeadLetters(sender)
    assert await letters.handle("fold-events", source(value), lambda n, r: applied.append(r)) is False
    assert applied == [] and len(sender.sent) == 1
    reason = dict(sender.sent[0][2])[dl.REASON].decode()
    assert reason.startswith("decode: ") and (error is None or error in reason)
    assert letters.counts == {("fold-events", "ns.job-events", Kind.DECODE): 1}


@pytest.mark.unit
async def test_a_dead_letter_is_the_original_key_value_and_headers_with_where_and_why():
    sender = FakeSender()
    value = garbage_after_header(MEDIA)
    # The original headers come along; a diarist-dlq-* of a replayed dead letter is replaced.
    original = Source("ns.media", 3, 41, b"\xff\xfe key", value, (("trace", b"t1"), (dl.REASON, b"old")))
    await DeadLetters(sender).handle("admit-media", original, ignore)
    key, sent_value, headers = sender.sent[0]
    assert (key, sent_value) == (b"\xff\xfe key", value)
    assert headers == [("trace", b"t1"), (dl.REASON, b"decode: EOFError: Expected 1 bytes, read 0"),
                       (dl.TOPIC, b"ns.media"), (dl.PARTITION, b"3"), (dl.OFFSET, b"41"), (dl.AGENT, b"admit-media")]


@pytest.mark.unit
async def test_a_message_of_a_schema_the_agent_does_not_take_is_schema_poison():
    sender = FakeSender()
    letters = DeadLetters(sender)
    value = codec().encode(MEDIA, {"request_id": "r", "spec": spec(), "occurred_at": lc.now()})
    assert await letters.handle("fold-events", source(value), ignore, schemas=lc.LIFECYCLE_EVENTS) is False
    assert dict(sender.sent[0][2])[dl.REASON] == b"schema: fold-events does not take diarist.MediaSubmitted"
    # Without `schemas`, the agent decides for itself (run-jobs ignores what is not its business).
    assert await letters.handle("run-jobs", source(value), ignore) is True
    assert len(sender.sent) == 1


@pytest.mark.unit
async def test_an_exception_while_applying_is_apply_poison_and_a_refusal_is_not(tmp_path):
    sender = FakeSender()
    letters = DeadLetters(sender)
    store = JobStore({}, JobIndex(tmp_path / "index"), LocalBlobStore(tmp_path / "blobs"))
    first = codec().encode(lc.CREATED, created("j1"))
    assert await letters.handle("fold-events", source(first), store.apply) is True
    # A replay and an illegal transition are refused by the fold: normal, silent, not poison.
    assert await letters.handle("fold-events", source(first, offset=8), store.apply) is True
    completed = lc.make_event("j1", 2, result={"key": "r", "md5": "0", "size": 1}, language="en",
                              language_probability=1.0)
    assert await letters.handle("fold-events", source(codec().encode(lc.COMPLETED_EVENT, completed)), store.apply)
    assert sender.sent == [] and store.get("j1")["status"] == lc.QUEUED

    # Decodable, but applying it raises (tests/test_deadletters.py's system test makes the job
    # store raise for real: a deleted job whose media key leaves the blob store).
    async def needs_what_is_not_there(name: str, record: dict) -> None:
        record["spec"]["media"]["bucket"]

    assert await letters.handle("admit-media", source(first, offset=10), needs_what_is_not_there) is False
    assert dict(sender.sent[0][2])[dl.REASON] == b"apply: KeyError: 'bucket'"
    assert letters.summary() == {"count": 1, "by": [
        {"agent": "admit-media", "topic": "ns.job-events", "kind": "apply", "count": 1}]}


@pytest.mark.unit
@pytest.mark.parametrize("failure", [KafkaTimeoutError(), ConnectionResetError(), TimeoutError(),
                                     httpx.ConnectError("peer down")])
async def test_a_failure_of_the_machinery_is_not_poison_and_propagates(failure):
    sender = FakeSender()
    letters = DeadLetters(sender)

    async def apply(name: str, record: dict) -> None:
        raise failure

    with pytest.raises(type(failure)):
        await letters.handle("admit-media", source(codec().encode(lc.CREATED, created())), apply)
    assert sender.sent == [] and letters.total == 0


@pytest.mark.unit
async def test_each_poison_value_is_logged_once_on_one_line(caplog):
    letters = DeadLetters(FakeSender())

    def apply(name: str, record: dict) -> None:
        raise KeyError("request_id")

    with caplog.at_level(logging.INFO, logger="diarist"):
        await letters.handle("callbacks", source(os.urandom(9), offset=11), apply)
        await letters.handle("callbacks", source(codec().encode(lc.CREATED, created()), offset=12), apply)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert lines[0].startswith("poison message on ns.job-events partition 2 offset 11, skipped by callbacks "
                               "and dead-lettered: decode: ")
    assert lines[1] == ("poison message on ns.job-events partition 2 offset 12, skipped by callbacks "
                        "and dead-lettered: apply: KeyError: 'request_id'")
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert letters.summary()["count"] == 2


@pytest.mark.unit
async def test_a_dead_letter_that_cannot_be_sent_is_not_counted_and_propagates():
    letters = DeadLetters(FakeSender(fail=KafkaTimeoutError()))
    with pytest.raises(KafkaTimeoutError):
        await letters.handle("fold-events", source(b"junk"), ignore)
    assert letters.total == 0


@pytest.mark.unit
def test_the_dead_letter_topic_is_created_with_the_others_and_keeps_every_copy_for_two_weeks():
    from diarist.infra.settings import Settings
    from diarist.streams.topics import topic_specs, topics

    settings = Settings(namespace="ns", partitions=4)
    spec = {s.name: s for s in topic_specs(settings)}[topics(settings).dead_letters]
    assert spec.name == "ns.dead-letters" and spec.partitions == 1 and not spec.compacted
    assert spec.topic_config() == {"cleanup.policy": "delete", "retention.ms": str(14 * 24 * 3600 * 1000)}


# --- for real: poison on the topics of a running service ------------------------------------

POISON_LINE = re.compile(r"poison message on (\S+) partition (\d+) offset (\d+), skipped by (\S+) and dead-lettered: (.*)")


def dead_letters_of(kafka, ns: str, expected: int, timeout: float = 60) -> list[tuple[bytes | None, bytes | None, dict]]:
    deadline = time.monotonic() + timeout
    while True:
        letters = read_raw(kafka.bootstrap_servers, f"{ns}.dead-letters")
        if len(letters) >= expected or time.monotonic() > deadline:
            return letters
        time.sleep(0.5)


def media_request(service, request_id: str, key: str, path: Path | None = None) -> dict:
    if path is not None:
        target = service.data_dir / "blobs" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return {"request_id": request_id, "occurred_at": lc.now(), "spec": spec(key)}


@pytest.mark.system
def test_poison_on_every_topic_is_dead_lettered_counted_and_skipped(service, kafka, speech):
    ns = service.env["DIARIST_NAMESPACE"]
    bootstrap = kafka.bootstrap_servers
    garbage_media = garbage_after_header(MEDIA)
    random_event = os.urandom(48)
    # (a) media: a valid wire header of diarist.MediaSubmitted, a body that is not (EOFError)
    produce_raw(bootstrap, f"{ns}.media", [(b"garbage-request", garbage_media)])
    # (b) events: random bytes, under a key that is not even UTF-8
    produce_raw(bootstrap, f"{ns}.job-events", [(b"\xff\xfe\xfd", random_event)])
    # (c) events: a decodable job whose fold breaks: its media lies outside the blob store, so
    # erasing it on delete raises (created, stopped and deleted in one batch: no worker starts it)
    bad_job = uuid.uuid4().hex
    chain = [(lc.CREATED, created(bad_job, key="../outside.wav")),
             (lc.STOPPED_EVENT, lc.make_event(bad_job, 2, reason="stop")), (lc.DELETED_EVENT, lc.make_event(bad_job, 3))]
    produce_raw(bootstrap, f"{ns}.job-events", [(bad_job.encode(), codec().encode(n, e)) for n, e in chain])
    # (d) media: a decodable request for media outside the blob store
    produce(bootstrap, f"{ns}.media", "escaping", MEDIA, media_request(service, "escaping", "../../etc/passwd"))
    # (e) heartbeats: a valid header of diarist.InferenceHeartbeat, a body that is not
    garbage_beat = garbage_after_header("diarist.InferenceHeartbeat")
    produce_raw(bootstrap, f"{ns}.inference-heartbeats", [(b"no-such-worker", garbage_beat)])

    expected = {  # (agent, topic, kind): what each consumer skipped
        ("admit-media", f"{ns}.media", "decode"), ("admit-media", f"{ns}.media", "apply"),
        ("fold-events", f"{ns}.job-events", "decode"), ("callbacks", f"{ns}.job-events", "decode"),
        ("run-jobs", f"{ns}.job-events", "decode"), ("fold-events", f"{ns}.job-events", "apply"),
        ("heartbeats", f"{ns}.inference-heartbeats", "decode")}
    letters = dead_letters_of(kafka, ns, len(expected))
    got = {(h[dl.AGENT].decode(), h[dl.TOPIC].decode(), h[dl.REASON].decode().split(":")[0]) for _, _, h in letters}
    assert len(letters) == len(expected) and got == expected, letters
    by = {(h[dl.AGENT].decode(), h[dl.REASON].decode().split(":")[0]): (key, value, h) for key, value, h in letters}
    assert by["admit-media", "decode"][:2] == (b"garbage-request", garbage_media)
    assert by["admit-media", "decode"][2][dl.REASON].startswith(b"decode: EOFError")
    assert by["admit-media", "apply"][2][dl.REASON] == b"apply: ValueError: blob key '../../etc/passwd' leaves the store"
    for agent in ("fold-events", "callbacks", "run-jobs"):
        assert by[agent, "decode"][:2] == (b"\xff\xfe\xfd", random_event)
    assert by["heartbeats", "decode"][:2] == (b"no-such-worker", garbage_beat)
    assert by["fold-events", "apply"][0] == bad_job.encode()
    assert codec().decode(by["fold-events", "apply"][1])[0] == lc.DELETED_EVENT
    assert by["fold-events", "apply"][2][dl.REASON] == b"apply: ValueError: blob key '../outside.wav' leaves the store"
    for _, _, headers in letters:
        assert {dl.PARTITION, dl.OFFSET} <= set(headers) and int(headers[dl.OFFSET]) >= 0

    # /healthz counts this jobs worker's (the inference worker only logs and sends its own)
    health = httpx.get(f"{service.url}/healthz", timeout=10).json()
    assert health["status"] == "ok" and health["dead_letters"]["count"] == 6
    assert {(b["agent"], b["topic"], b["kind"]) for b in health["dead_letters"]["by"]} == expected - {
        ("run-jobs", f"{ns}.job-events", "decode")}

    # every agent is still alive: a media event and an upload after the poison both complete
    request_id = uuid.uuid4().hex
    produce(bootstrap, f"{ns}.media", request_id, MEDIA,
            media_request(service, request_id, f"incoming/{request_id}.wav", speech[0]))
    with service.client() as client:
        job = submit(client, speech[0])
        assert wait_for_job(client, job["id"], until_status("COMPLETED", "FAILED"))["status"] == "COMPLETED"
        admitted = job_id_for_request(request_id)
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{admitted}").status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert wait_for_job(client, admitted, until_status("COMPLETED", "FAILED"))["status"] == "COMPLETED"
        # the fold either wrote the deletion before erasing raised, or refused to: the store's business
        assert client.get(f"/v1/jobs/{bad_job}").json()["status"] in ("STOPPED", "DELETED")

    # each poison value logged once, on one line, by each consumer that skipped it; no crash
    for role, count in (("worker", 6), ("inference", 1)):
        log = service.log(role)
        lines = POISON_LINE.findall(log)
        assert len(lines) == count, lines
        assert len({(topic, partition, offset, agent) for topic, partition, offset, agent, _ in lines}) == count
        assert "Crashed reason" not in log and "Traceback" not in log, log[-3000:]
    assert len(dead_letters_of(kafka, ns, len(expected), timeout=0)) == len(expected)  # nothing sent twice
