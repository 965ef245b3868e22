"""Avro in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro body.

Writers always use the latest released version of a schema; readers resolve whatever version
wrote the bytes into the current definition, so old events stay readable as schemas evolve.

The ids are the stable ones of schemas/ids.json, unless the process registered the released
schemas in an external schema registry (DIARIST_SCHEMA_REGISTRY_URL, schemas/external.py): then
it frames with the ids that registry gave, and asks it for the schema of an id it does not know.
"""
from __future__ import annotations

import io
import struct
from collections.abc import Callable
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from diarist.schemas import registry

MAGIC = 0
HEADER = struct.Struct(">bI")


class SchemaError(ValueError):
    """Bytes that are not a message of a known schema."""


# The id a registry gave a released version (schemas/external.py); None: the stable ids.
Assign = Callable[[registry.Release], int]
# The schema a registry holds under an id, or None when it holds none.
Fetch = Callable[[int], dict[str, Any] | None]


class Codec:
    def __init__(self, assign: Assign | None = None, fetch: Fetch | None = None) -> None:
        self._writers: dict[str, tuple[int, dict]] = {}
        self._by_id: dict[int, tuple[str, dict] | None] = {}
        self._readers: dict[str, dict] = {}
        self._fetch = fetch
        for name in registry.MESSAGES:
            releases = registry.releases(name)
            if not releases:
                raise SchemaError(f"{name} has no released version: run `python -m diarist.schemas`")
            schema_id = 0
            for release in releases:
                schema_id = assign(release) if assign else release.schema_id
                self._by_id[schema_id] = (name, parse_schema(release.schema, _write_hint=False))
            self._writers[name] = (schema_id, parse_schema(releases[-1].schema))
            self._readers[name] = parse_schema(registry.current_schema(name))

    def schema_id(self, name: str) -> int:
        return self._writers[name][0]

    def encode(self, name: str, record: dict) -> bytes:
        schema_id, schema = self._writers[name]
        out = io.BytesIO()
        out.write(HEADER.pack(MAGIC, schema_id))
        schemaless_writer(out, schema, record)
        return out.getvalue()

    def decode(self, data: bytes) -> tuple[str, dict]:
        """Returns the schema's full name and the record."""
        if len(data) < HEADER.size:
            raise SchemaError("message shorter than the wire-format header")
        magic, schema_id = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise SchemaError(f"unknown magic byte {magic}")
        known = self._by_id[schema_id] if schema_id in self._by_id else self._fetched(schema_id)
        if known is None:
            raise SchemaError(f"unknown schema id {schema_id}")
        name, writer = known
        body = io.BytesIO(data[HEADER.size:])
        return name, schemaless_reader(body, writer, self._readers[name])

    def _fetched(self, schema_id: int) -> tuple[str, dict] | None:
        """A version of one of our messages that the external registry holds and this process
        did not register (one written by a newer diarist, say); None for anything else."""
        if self._fetch is None:
            return None
        try:
            schema = self._fetch(schema_id)
        except Exception as exc:  # the registry did not answer: asked again next time
            raise SchemaError(f"schema id {schema_id}: the schema registry did not answer ({exc})") from None
        try:
            parsed = parse_schema(schema, _write_hint=False) if schema is not None else None
        except Exception:
            parsed = None
        name = parsed.get("name") if isinstance(parsed, dict) else None
        known = (name, parsed) if isinstance(parsed, dict) and name in self._readers else None
        self._by_id[schema_id] = known  # the registry's answer for an id never changes
        return known


_codec: Codec | None = None


def codec() -> Codec:
    """The process-wide codec (schemas are parsed once): the stable ids, unless `install` gave
    another."""
    global _codec
    if _codec is None:
        _codec = Codec()
    return _codec


def install(new: Codec) -> None:
    """Makes `new` the process-wide codec (schemas/external.py: the ids of an external registry)."""
    global _codec
    _codec = new
