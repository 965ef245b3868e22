"""The types of job state (streams/jobs/types.py) against the Avro schemas they stand for.

Each record of schemas/*.avsc has a TypedDict with the same fields in the same order, the same
optionality (a union with null is `X | None`) and the same kind of value; each Avro enum a
StrEnum with the same symbols."""
from __future__ import annotations

import json
import types as pytypes
import typing
from datetime import datetime
from enum import StrEnum
from typing import Any

import pytest

from diarist.schemas import codec, registry
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs import types

pytestmark = pytest.mark.unit

pytestmark = pytest.mark.unit

RECORDS: dict[str, Any] = {
    "diarist.Job": types.Job, "diarist.JobSpec": types.JobSpec, "diarist.JobOptions": types.JobOptions,
    "diarist.Idempotency": types.Idempotency,
    "diarist.MediaRef": types.MediaRef, "diarist.MediaInfo": types.MediaInfo,
    "diarist.ChannelInfo": types.ChannelInfo, "diarist.ResultRef": types.ResultRef,
    "diarist.Transition": types.Transition,
    "diarist.JobCreated": types.JobCreated, "diarist.JobStarted": types.JobStarted,
    "diarist.JobDiarized": types.JobDiarized, "diarist.JobProgress": types.JobProgress,
    "diarist.JobCompleted": types.JobCompleted, "diarist.JobFailed": types.JobFailed,
    "diarist.JobStopped": types.JobStopped, "diarist.JobRetried": types.JobRetried,
    "diarist.JobDeleted": types.JobDeleted, "diarist.JobCallbackFailed": types.JobCallbackFailed,
    "diarist.MediaSubmitted": types.MediaSubmitted, "diarist.InferenceHeartbeat": types.InferenceHeartbeat,
}
ENUMS: dict[str, type[StrEnum]] = {"diarist.JobStatus": types.Status, "diarist.JobTask": types.Task}
AVRO_NAMES = {kind: name for name, kind in [*RECORDS.items(), *ENUMS.items()]}
PRIMITIVES = {"string": "string", "int": "integer", "long": "integer", "float": "number", "double": "number",
              "boolean": "boolean"}
PYTHON = {str: "string", int: "integer", float: "number", bool: "boolean", datetime: "timestamp"}


def _fullname(schema: dict[str, Any], namespace: str) -> str:
    name = schema["name"]
    return name if "." in name else f"{schema.get('namespace', namespace)}.{name}"


def _named(schema: Any, namespace: str = "diarist", found: dict[str, dict[str, Any]] | None = None,
           ) -> dict[str, dict[str, Any]]:
    """Every named type (record or enum) defined in the schema, by full name."""
    found = {} if found is None else found
    if isinstance(schema, list):
        for branch in schema:
            _named(branch, namespace, found)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "enum"):
            name = _fullname(schema, namespace)
            found[name] = schema
            namespace = name.rpartition(".")[0]
        for field in schema.get("fields", []):
            _named(field["type"], namespace, found)
        for key in ("items", "values"):
            if key in schema:
                _named(schema[key], namespace, found)
    return found


NAMED: dict[str, dict[str, Any]] = {}
for path in sorted(registry.SCHEMA_DIR.glob("*.avsc")):
    _named(registry.current_schema(path.stem), found=NAMED)


def avro_kind(schema: Any) -> tuple[Any, bool]:
    """(coarse kind, nullable) of an Avro type."""
    if isinstance(schema, list):
        branches = [branch for branch in schema if branch != "null"]
        assert len(branches) == 1, f"only unions of one type and null are expected: {schema}"
        return avro_kind(branches[0])[0], "null" in schema
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return PRIMITIVES[schema], False
        return avro_kind(NAMED[schema if "." in schema else f"diarist.{schema}"])
    kind = schema["type"]
    if schema.get("logicalType") == "timestamp-millis":
        return "timestamp", False
    if kind in ("record", "enum"):
        return (kind, _fullname(schema, "diarist")), False
    if kind == "array":
        return ("array", avro_kind(schema["items"])[0]), False
    if kind == "map":
        return ("map", avro_kind(schema["values"])[0]), False
    return avro_kind(kind)


def python_kind(hint: Any) -> tuple[Any, bool]:
    """(coarse kind, nullable) of a type hint."""
    if typing.get_origin(hint) in (typing.Union, pytypes.UnionType):
        branches = [branch for branch in typing.get_args(hint) if branch is not type(None)]
        assert len(branches) == 1, f"only X | None is expected: {hint}"
        return python_kind(branches[0])[0], type(None) in typing.get_args(hint)
    if typing.get_origin(hint) is list:
        return ("array", python_kind(typing.get_args(hint)[0])[0]), False
    if typing.get_origin(hint) is dict:
        key, value = typing.get_args(hint)
        assert key is str, "Avro maps have string keys"
        return ("map", python_kind(value)[0]), False
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return ("enum", AVRO_NAMES[hint]), False
    if typing.is_typeddict(hint):
        return ("record", AVRO_NAMES[hint]), False
    return PYTHON[hint], False


def test_every_avro_record_and_enum_has_its_type():
    records = {name for name, schema in NAMED.items() if schema["type"] == "record"}
    enums = {name for name, schema in NAMED.items() if schema["type"] == "enum"}
    assert records == set(RECORDS)
    assert enums == set(ENUMS)


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_a_typed_dict_has_the_fields_of_its_record(name):
    hints = typing.get_type_hints(RECORDS[name])
    fields = {field["name"]: field["type"] for field in NAMED[name]["fields"]}
    assert list(hints) == list(fields), "the same fields, in the same order"
    for field, avro_type in fields.items():
        assert python_kind(hints[field]) == avro_kind(avro_type), f"{name}.{field}"


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_an_enum_has_the_symbols_of_its_avro_enum(name):
    assert [member.value for member in ENUMS[name]] == NAMED[name]["symbols"]


def test_the_lifecycle_event_type_is_every_lifecycle_event():
    assert [AVRO_NAMES[event] for event in typing.get_args(types.LifecycleEvent)] == list(lc.LIFECYCLE_EVENTS)


def test_a_status_is_the_string_the_avro_reader_gives_back():
    assert lc.QUEUED is types.Status.QUEUED and lc.DELETED is types.Status.DELETED
    assert types.Status("IN_PROGRESS") is types.Status.IN_PROGRESS == "IN_PROGRESS"
    assert json.dumps({"status": types.Status.FAILED}) == '{"status": "FAILED"}'
    assert f"{types.Status.STOPPED}" == str(types.Status.STOPPED) == "STOPPED"
    assert {"COMPLETED": 1}[types.Status.COMPLETED] == 1  # the same hash as the plain string


def test_a_folded_job_has_the_fields_of_its_type_and_survives_the_codec():
    options = {"tag": None, "language": None, "model": None, "callback_urls": [], "metadata": None,
               "task": types.Task.TRANSCRIPTION, "engine": None, "diarization": True, "speakers_count": None,
               "min_speakers": None, "max_speakers": None, "clustering_threshold": None, "hints": [],
               "delete_after_seconds": None, "callback_headers": {}, "api": "diarist", "batch_size": 4}
    spec = {"filename": "a.wav", "media": {"key": "media/a", "md5": "0" * 32, "size": 1, "content_type": None},
            "options": options, "idempotency": None}
    job = lc.fold(None, lc.CREATED, lc.make_event("j1", 1, spec=spec))
    job = lc.fold(job, lc.STARTED, lc.next_event(job, worker="w"))
    assert set(job) == set(typing.get_type_hints(types.Job))
    name, decoded = codec().decode(codec().encode("diarist.Job", job))
    assert decoded == job and decoded["status"] == types.Status.IN_PROGRESS
    assert decoded["spec"]["options"]["task"] == types.Task.TRANSCRIPTION


def test_engines_are_the_ones_the_asr_module_loads():
    from diarist.streams.inference import asr

    assert asr.ENGINES is types.ENGINES == ("faster-whisper", "openai-whisper")
