"""Avro schemas of every event and record diarist writes, and their Confluent wire-format codec."""
from diarist.schemas.codec import Codec, SchemaError, codec

__all__ = ["Codec", "SchemaError", "codec"]
