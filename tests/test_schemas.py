"""The event contract: the wire format, released versions and backward compatibility."""
import copy

import pytest
from fastavro import parse_schema
from fastavro.utils import generate_many

from diarist.schemas import SchemaError, codec, registry

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", registry.MESSAGES)
def test_every_message_round_trips_in_the_confluent_wire_format(name):
    schema = parse_schema(registry.current_schema(name))
    for record in generate_many(schema, 20):
        data = codec().encode(name, record)
        assert data[0] == 0
        assert int.from_bytes(data[1:5], "big") == codec().schema_id(name)
        decoded_name, decoded = codec().decode(data)
        # Logical types come back as datetimes: compare by re-encoding.
        assert decoded_name == name and codec().encode(name, decoded) == data


def test_schema_ids_are_unique_and_stable():
    ids = [r.schema_id for name in registry.MESSAGES for r in registry.releases(name)]
    assert len(ids) == len(set(ids))
    # The first release of the first event is id 1: consumers in the wild rely on it.
    assert registry.releases("diarist.JobCreated")[0].schema_id == 1


@pytest.mark.parametrize("name", registry.MESSAGES)
def test_current_schema_is_released(name):
    latest = registry.releases(name)[-1].schema
    assert registry.current_schema(name) == latest, (
        f"{name} changed since its last release: run `python -m diarist.schemas` and commit"
    )


@pytest.mark.parametrize("name", registry.MESSAGES)
def test_every_release_reads_what_the_older_ones_wrote(name):
    releases = registry.releases(name)
    for i, older in enumerate(releases):
        for newer in releases[i + 1:]:
            assert registry.incompatibility(older.schema, newer.schema) is None


def _schema_with(name, mutate):
    schema = copy.deepcopy(registry.current_schema(name))
    mutate(schema)
    return schema


def test_adding_a_field_with_a_default_is_compatible():
    old = registry.current_schema("diarist.JobFailed")
    new = _schema_with("diarist.JobFailed", lambda s: s["fields"].append(
        {"name": "code", "type": ["null", "string"], "default": None}))
    assert registry.incompatibility(old, new) is None


@pytest.mark.parametrize("mutate", [
    lambda s: s["fields"].append({"name": "code", "type": "string"}),
    lambda s: s["fields"][-1].update(type="int"),
])
def test_breaking_changes_are_caught(mutate):
    old = registry.current_schema("diarist.JobFailed")
    new = _schema_with("diarist.JobFailed", mutate)
    assert registry.incompatibility(old, new) is not None


def test_removing_an_enum_symbol_is_caught():
    old = registry.current_schema("diarist.Job")

    def drop_deleted(schema):
        status = next(f for f in schema["fields"] if f["name"] == "status")
        status["type"]["symbols"].remove("DELETED")

    assert registry.incompatibility(old, _schema_with("diarist.Job", drop_deleted), samples=500) is not None


def test_garbage_is_refused_with_a_schema_error():
    with pytest.raises(SchemaError):
        codec().decode(b"\x01\x00\x00\x00\x01abc")
    with pytest.raises(SchemaError):
        codec().decode(b"\x00\x00\x00\x99\x99abc")
    with pytest.raises(SchemaError):
        codec().decode(b"\x00")
