"""The Confluent Schema Registry subset the edge serves (api/schema_registry.py), and diarist's schemas
registered in an external registry (schemas/external.py).

Unit: the REST answers, their errors in the registry's shape, the two ways of sending the key; the
codec framing with the ids a registry gave (confluent-kafka's in-memory mock registry, whose ids
differ from the stable ones). System: confluent-kafka's SchemaRegistryClient and AvroDeserializer
decode every event of a real job's lifecycle through the running service; and a second service
pointed at the first one's registry (DIARIST_SCHEMA_REGISTRY_URL) registers there and writes
events the first one's registry decodes.
"""
from __future__ import annotations

import base64
import io
import json

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import parse_schema, schemaless_writer
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.testclient import TestClient

from diarist.api import schema_registry
from diarist.api.auth import BearerAuth
from diarist.schemas import codec, external, registry
from diarist.schemas.codec import Codec
from diarist.streams.jobs import lifecycle as lc

from .conftest import running_service
from .kafka_tools import read_raw
from .service import KEY, submit, until_status, wait_for_job

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
CREATED = "diarist.JobCreated"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def edge() -> TestClient:
    app = Starlette(routes=schema_registry.routes,
                    middleware=[Middleware(BearerAuth, keys=frozenset({KEY}), surfaces=(schema_registry.surface,),
                                           public_routes=[])])
    return TestClient(app, headers=basic("any", KEY))


def released(name: str) -> list[registry.Release]:
    return registry.releases(name)


@pytest.mark.unit
def test_a_schema_is_read_by_its_stable_id(edge):
    first = released(CREATED)[0]
    response = edge.get(f"/schemas/ids/{first.schema_id}", params={"subject": "diarist.job-events-value"})
    assert response.status_code == 200 and response.headers["content-type"] == MEDIA_TYPE
    assert json.loads(response.json()["schema"]) == first.schema
    assert edge.get(f"/schemas/ids/{first.schema_id}/versions").json() == [{"subject": CREATED, "version": 1}]
    assert edge.get(f"/schemas/ids/{first.schema_id}/subjects").json() == [CREATED]
    assert edge.get("/schemas/types").json() == ["AVRO"]
    # confluent-kafka's default subject name strategy asks first which subject a topic is associated with
    associated = edge.get("/associations/resources/-/diarist.job-events", params={"resourceType": "topic"})
    assert associated.status_code == 200 and associated.json() == []


@pytest.mark.unit
@pytest.mark.parametrize("path", ["/schemas/ids/99999", "/schemas/ids/nope", "/schemas/ids/99999/versions"])
def test_an_unknown_id_is_40403(edge, path):
    response = edge.get(path)
    assert response.status_code == 404 and response.headers["content-type"] == MEDIA_TYPE
    assert response.json()["error_code"] == 40403 and response.json()["message"]


@pytest.mark.unit
def test_subjects_are_record_names_and_versions_the_releases(edge):
    assert edge.get("/subjects").json() == sorted(registry.MESSAGES)
    assert edge.get("/subjects", params={"subjectPrefix": "diarist.Media"}).json() == ["diarist.MediaSubmitted"]
    releases = released(CREATED)
    assert edge.get(f"/subjects/{CREATED}/versions").json() == [r.version for r in releases]
    for version in ("latest", "-1", str(len(releases))):
        latest = edge.get(f"/subjects/{CREATED}/versions/{version}").json()
        assert latest["subject"] == CREATED and latest["version"] == len(releases)
        assert latest["id"] == releases[-1].schema_id and json.loads(latest["schema"]) == releases[-1].schema
    assert edge.get(f"/subjects/{CREATED}/versions/1/schema").json() == releases[0].schema
    assert edge.get("/config").json() == {"compatibilityLevel": "BACKWARD"}


@pytest.mark.unit
@pytest.mark.parametrize(("path", "status", "code"), [
    ("/subjects/diarist.Nope/versions", 404, 40401),
    ("/subjects/diarist.Nope/versions/1", 404, 40401),
    (f"/subjects/{CREATED}/versions/999", 404, 40402),
    (f"/subjects/{CREATED}/versions/first", 422, 42202),
    (f"/subjects/{CREATED}/versions/0", 422, 42202),
])
def test_unknown_subjects_and_versions_answer_in_the_registry_shape(edge, path, status, code):
    response = edge.get(path)
    assert response.status_code == status and response.json()["error_code"] == code, response.text


@pytest.mark.unit
def test_the_key_comes_as_bearer_or_as_the_basic_password_and_nothing_else(edge):
    path = "/subjects"
    assert edge.get(path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert edge.get(path, headers=basic("whoever", KEY)).status_code == 200
    for headers in ({"Authorization": ""}, basic(KEY, "wrong"), {"Authorization": "Basic !!!"},
                    {"Authorization": "Bearer wrong"}):
        refused = edge.get(path, headers=headers)
        assert refused.status_code == 401 and refused.headers["content-type"] == MEDIA_TYPE, headers
        assert refused.json()["error_code"] == 40101 and "Basic" in refused.headers["www-authenticate"]


def post(edge: TestClient, path: str, schema: object, **body: object):
    text = schema if isinstance(schema, str) else json.dumps(schema)
    return edge.post(path, content=json.dumps({"schema": text, **body}), headers={"Content-Type": MEDIA_TYPE})


@pytest.mark.unit
def test_registering_a_released_version_answers_its_id_and_anything_else_is_refused(edge):
    releases = released(CREATED)
    for release in releases:
        assert post(edge, f"/subjects/{CREATED}/versions", release.schema).json() == {"id": release.schema_id}
    found = post(edge, f"/subjects/{CREATED}", releases[0].schema).json()
    assert found["id"] == releases[0].schema_id and found["version"] == 1
    latest = releases[-1].schema
    breaking = {**latest, "fields": [*latest["fields"], {"name": "extra", "type": "string"}]}
    refused = post(edge, f"/subjects/{CREATED}/versions", breaking)
    assert refused.status_code == 409 and refused.json()["error_code"] == 409, refused.text
    compatible = {**latest, "fields": [*latest["fields"], {"name": "extra", "type": "string", "default": ""}]}
    refused = post(edge, f"/subjects/{CREATED}/versions", compatible)
    assert refused.status_code == 422 and refused.json()["error_code"] == 42205, refused.text
    assert post(edge, f"/subjects/{CREATED}", compatible).json()["error_code"] == 40403
    for bad in ("{not json", {"type": "nonsense"}):
        refused = post(edge, f"/subjects/{CREATED}/versions", bad)
        assert refused.status_code == 422 and refused.json()["error_code"] == 42201, refused.text
    assert post(edge, "/subjects/diarist.Nope/versions", latest).json()["error_code"] == 42205
    assert post(edge, f"/subjects/{CREATED}/versions", latest, schemaType="PROTOBUF").json()["error_code"] == 42201


@pytest.mark.unit
def test_compatibility_is_backward_against_the_version_asked(edge):
    latest = released(CREATED)[-1].schema
    breaking = {**latest, "fields": [*latest["fields"], {"name": "extra", "type": "string"}]}
    current = registry.current_schema(CREATED)
    for version in ("latest", "1"):
        path = f"/compatibility/subjects/{CREATED}/versions/{version}"
        assert post(edge, path, current).json() == {"is_compatible": True}
        verbose = post(edge, path + "?verbose=true", breaking).json()
        assert verbose["is_compatible"] is False and verbose["messages"]
    assert post(edge, f"/compatibility/subjects/{CREATED}/versions", current).json() == {"is_compatible": True}
    assert post(edge, f"/compatibility/subjects/{CREATED}/versions/99", current).json()["error_code"] == 40402


@pytest.mark.unit
def test_the_codec_frames_with_the_ids_an_external_registry_gave():
    mock = SchemaRegistryClient.new_client({"url": "mock://diarist-test"})
    ids = external.register(mock)
    assert external.register(mock) == ids  # registering again answers the same ids
    given = Codec(assign=lambda release: ids[release.name, release.version], fetch=external.fetcher(mock))
    stable = codec()
    assert given.schema_id(CREATED) == ids[CREATED, len(released(CREATED))] != stable.schema_id(CREATED)
    event = lc.make_event("job-1", 2, worker="w")
    data = given.encode(lc.STARTED, event)
    assert int.from_bytes(data[1:5], "big") == ids[lc.STARTED, 1]
    assert given.decode(data) == (lc.STARTED, event)
    ctx = SerializationContext("diarist.job-events", MessageField.VALUE)
    assert AvroDeserializer(mock)(data, ctx) == event
    # An id the registry holds that this process did not register (a newer diarist's) is asked of it.
    newer = {**registry.current_schema(lc.STARTED)}
    newer["fields"] = [*newer["fields"], {"name": "host", "type": "string", "default": "h"}]
    newer_id = mock.register_schema(lc.STARTED, Schema(json.dumps(newer), "AVRO"))
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(newer), {**event, "host": "gpu-1"})
    framed = b"\x00" + newer_id.to_bytes(4, "big") + out.getvalue()
    assert given.decode(framed) == (lc.STARTED, event)
    with pytest.raises(Exception, match="unknown schema id"):
        given.decode(b"\x00" + (10**6).to_bytes(4, "big") + b"\x02")


def lifecycle_messages(bootstrap: str, topic: str, job_id: str) -> list[bytes]:
    """The values of every message of one job on the events topic, in order."""
    return [value for key, value, _ in read_raw(bootstrap, topic) if key == job_id.encode()]


def deserialized_lifecycle(service, job_id: str, registry_url: str) -> list[dict]:
    client = SchemaRegistryClient({"url": registry_url, "basic.auth.user.info": f"any:{KEY}"})
    deserialize = AvroDeserializer(client)
    topic = f"{service.env['DIARIST_NAMESPACE']}.job-events"
    ctx = SerializationContext(topic, MessageField.VALUE)
    return [deserialize(value, ctx) for value in lifecycle_messages(service.env["DIARIST_BOOTSTRAP_SERVERS"], topic, job_id)]


@pytest.mark.system
def test_confluent_clients_read_the_schemas_and_decode_a_whole_lifecycle(service, speech):
    client = SchemaRegistryClient({"url": service.url, "basic.auth.user.info": f"any:{KEY}"})
    assert sorted(client.get_subjects()) == sorted(registry.MESSAGES)
    latest = client.get_latest_version(CREATED)
    assert latest.schema_id == released(CREATED)[-1].schema_id
    assert client.get_versions(CREATED) == [r.version for r in released(CREATED)]
    assert client.get_schema(released(CREATED)[0].schema_id).schema_type == "AVRO"
    assert client.test_compatibility(CREATED, Schema(json.dumps(registry.current_schema(CREATED)), "AVRO"))
    with pytest.raises(SchemaRegistryError) as refused:
        client.get_version("diarist.Nope", 1)
    assert refused.value.http_status_code == 404 and refused.value.error_code == 40401
    unkeyed = SchemaRegistryClient({"url": service.url, "basic.auth.user.info": "any:wrong"})
    with pytest.raises(SchemaRegistryError) as refused:
        unkeyed.get_subjects()
    assert refused.value.http_status_code == 401 and refused.value.error_code == 40101

    with service.client() as api:
        created = submit(api, speech[0])
        job = wait_for_job(api, created["id"], until_status("COMPLETED", "FAILED"))
    assert job["status"] == "COMPLETED", job["failure_reason"]
    events = deserialized_lifecycle(service, job["id"], service.url)
    assert [e["version"] for e in events if "version" in e][:1] == [1]
    assert all(e["job_id"] == job["id"] for e in events)
    words = [h["event"] for h in job["history"]]
    assert words == ["created", "started", "diarized", "completed"]
    assert events[0]["spec"]["filename"] == speech[0].name  # created
    assert any("result" in e and e["result"]["key"] for e in events)  # completed
    assert any("percent" in e for e in events) or len(events) == 4  # progress, when there was time for it


@pytest.mark.system
def test_a_service_pointed_at_a_registry_registers_there_and_writes_its_ids(service, tmp_path_factory, kafka, speech):
    registry_url = f"http://any:{KEY}@127.0.0.1:{service.port}"
    before = registry_posts(service)
    for second in running_service(tmp_path_factory, kafka, "registered", DIARIST_SCHEMA_REGISTRY_URL=registry_url):
        assert registry_posts(service) > before  # it asked the first one's registry for its ids
        with second.client() as api:
            created = submit(api, speech[0])
            job = wait_for_job(api, created["id"], until_status("COMPLETED", "FAILED"))
        assert job["status"] == "COMPLETED", job["failure_reason"]
        events = deserialized_lifecycle(second, job["id"], service.url)
        assert [e["job_id"] for e in events] == [job["id"]] * len(events) and len(events) >= 4
        assert "schemas registered at" in second.log("worker")


def registry_posts(service) -> float:
    """How many schema registrations the service's registry answered (its /metrics)."""
    with service.client() as api:
        text = api.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("diarist_http_requests_total{") and 'route="/subjects/{subject}/versions"' in line \
                and 'method="POST"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
