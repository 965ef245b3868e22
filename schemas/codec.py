"""Avro in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro body.

Writers always use the latest released version of a schema; readers resolve whatever version
wrote the bytes into the current definition, so old events stay readable as schemas evolve.
"""
from __future__ import annotations

import io
import struct
from functools import cache

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from diarist.schemas import registry

MAGIC = 0
HEADER = struct.Struct(">bI")


class SchemaError(ValueError):
    """Bytes that are not a message of a known schema."""


class Codec:
    def __init__(self) -> None:
        self._writers: dict[str, tuple[int, dict]] = {}
        self._by_id: dict[int, tuple[str, dict]] = {}
        self._readers: dict[str, dict] = {}
        for name in registry.MESSAGES:
            releases = registry.releases(name)
            if not releases:
                raise SchemaError(f"{name} has no released version: run `python -m diarist.schemas`")
            for release in releases:
                self._by_id[release.schema_id] = (name, parse_schema(release.schema, _write_hint=False))
            latest = releases[-1]
            self._writers[name] = (latest.schema_id, parse_schema(latest.schema))
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
        try:
            name, writer = self._by_id[schema_id]
        except KeyError:
            raise SchemaError(f"unknown schema id {schema_id}") from None
        body = io.BytesIO(data[HEADER.size:])
        return name, schemaless_reader(body, writer, self._readers[name])


@cache
def codec() -> Codec:
    """The process-wide codec (schemas are parsed once)."""
    return Codec()
