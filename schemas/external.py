"""diarist's schemas in an external schema registry (DIARIST_SCHEMA_REGISTRY_URL): Confluent Schema
Registry, Karapace, or Apicurio Registry through its Confluent-compatible API (`/apis/ccompat/v7`).

At startup every process that writes (jobs and inference workers) registers each released
version of each message schema, oldest first, under the subject of its record name
(RecordNameStrategy: subject `diarist.JobCreated`, versions in release order) and frames what
it writes with the ids that registry gave. Registering is idempotent: a schema the subject
already holds answers its existing id, so every process of a deployment, and every restart,
gets the same ids. An id that process did not register (a version registered by a newer
diarist) is asked of the registry when a message carries it.

docs/events.md says how to point consumers and each registry at it.
"""
from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from diarist.schemas import registry
from diarist.schemas.codec import Codec, install

log = logging.getLogger(__name__)


def subject(name: str) -> str:
    """The subject a message schema is registered under: its record's full name."""
    return name


def client(url: str) -> SchemaRegistryClient:
    """A client of the registry at `url`; credentials in it (`https://user:password@host`) are
    sent as HTTP Basic, the way Confluent Cloud, Karapace and Apicurio take them."""
    parts = urlsplit(url)
    conf: dict[str, Any] = {"url": url}
    if parts.username is not None:
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port is not None:
            netloc += f":{parts.port}"
        conf = {"url": urlunsplit(parts._replace(netloc=netloc)),
                "basic.auth.user.info": f"{unquote(parts.username)}:{unquote(parts.password or '')}"}
    return SchemaRegistryClient(conf)


def redacted(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def register(registry_client: SchemaRegistryClient) -> dict[tuple[str, int], int]:
    """Registers every released version of every message schema; (name, version) -> the id given."""
    ids = {}
    for name in registry.MESSAGES:
        for release in registry.releases(name):
            schema = Schema(json.dumps(release.schema, sort_keys=True), "AVRO")
            ids[name, release.version] = registry_client.register_schema(subject(name), schema)
    return ids


def fetcher(registry_client: SchemaRegistryClient):
    """The schema the registry holds under an id (None when it holds none), for the codec."""
    def fetch(schema_id: int) -> dict[str, Any] | None:
        try:
            schema = registry_client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return None
            raise
        if (schema.schema_type or "AVRO") != "AVRO" or not schema.schema_str:
            return None
        parsed: dict[str, Any] = json.loads(schema.schema_str)
        return parsed

    return fetch


def use_registry(url: str) -> Codec:
    """Registers the schemas at `url` and makes the process write with the ids it gave."""
    registry_client = client(url)
    ids = register(registry_client)
    codec = Codec(assign=lambda release: ids[release.name, release.version], fetch=fetcher(registry_client))
    install(codec)
    log.info("schemas registered at %s: %s", redacted(url),
             ", ".join(f"{name} id {codec.schema_id(name)}" for name in registry.MESSAGES))
    return codec
