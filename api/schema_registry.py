"""The Confluent Schema Registry REST API, the subset its clients use to read, served from diarist's
released schemas and their stable ids (schemas/released/, schemas/ids.json).

So confluent-kafka's AvroDeserializer, Kafka Connect, ksqlDB or any Avro consumer that speaks to a
schema registry decodes the lifecycle topic with `schema.registry.url` set to the edge. Those
deserializers look a schema up by the id framed in each message (GET /schemas/ids/{id}); a
subject matters only to clients that browse or check compatibility.

Subjects follow the RecordNameStrategy: one subject per message schema, named by its record's
full name (`diarist.JobCreated`), whose versions are the released versions in order (version N is
`schemas/released/diarist.JobCreated.vN.avsc`). The events topic carries ten record types, so a
TopicNameStrategy subject (`<topic>-value`, one schema per topic) could not describe it.

Registering is read-only in effect: POST /subjects/{subject}/versions answers the existing id
when the schema is one of the subject's released versions (what a diarist pointed at this
registry with DIARIST_SCHEMA_REGISTRY_URL asks), 409 when it is not compatible with the subject's
latest version, and 422 otherwise (a new version is made by releasing it: `python -m
diarist.schemas`). Compatibility is BACKWARD, as schemas/registry.py enforces at release.

Answers are `application/vnd.schemaregistry.v1+json`, errors in the registry's shape
(`{"error_code": 40401, "message": ...}`), which its clients parse. Clients send the API key as
`Authorization: Bearer <key>` or as the password of HTTP Basic (confluent-kafka:
`basic.auth.user.info` = `any:<key>`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from fastavro import parse_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from diarist.api.openapi import BASIC, BEARER
from diarist.api.surface import Surface
from diarist.schemas import registry

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
COMPATIBILITY = "BACKWARD"

# The registry's error codes (Confluent's RestException subclasses; Karapace and Apicurio's
# ccompat API answer the same).
UNAUTHORIZED = 40101
SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
INCOMPATIBLE = 409
INVALID_SCHEMA = 42201
INVALID_VERSION = 42202
NOT_PERMITTED = 42205


class RegistryError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def answer(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error_code": code, "message": message}, status_code=status, media_type=MEDIA_TYPE,
                        headers=headers)


def unauthorized(request: Request, detail: str) -> Response:
    return error(401, UNAUTHORIZED, f"{detail}, or as the password of HTTP Basic",
                 headers={"WWW-Authenticate": 'Basic realm="diarist schema registry", Bearer'})


@dataclass(frozen=True)
class Version:
    subject: str
    version: int
    id: int
    schema: dict[str, Any]

    @property
    def text(self) -> str:
        return json.dumps(self.schema, separators=(",", ":"))

    def registered(self) -> dict[str, Any]:
        return {"subject": self.subject, "version": self.version, "id": self.id, "schema": self.text}


@cache
def subjects() -> dict[str, list[Version]]:
    """subject -> its versions, oldest first: the released versions of each message schema."""
    return {name: [Version(name, r.version, r.schema_id, r.schema) for r in registry.releases(name)]
            for name in sorted(registry.MESSAGES)}


@cache
def by_id() -> dict[int, Version]:
    return {v.id: v for versions in subjects().values() for v in versions}


def _schema_id(request: Request) -> Version:
    raw = request.path_params["schema_id"]
    try:
        return by_id()[int(raw)]
    except (ValueError, KeyError):
        raise RegistryError(404, SCHEMA_NOT_FOUND, f"Schema {raw} not found") from None


def _subject(request: Request) -> list[Version]:
    name = request.path_params["subject"]
    try:
        return subjects()[name]
    except KeyError:
        raise RegistryError(404, SUBJECT_NOT_FOUND, f"Subject '{name}' not found.") from None


def _version(request: Request) -> Version:
    versions = _subject(request)
    raw = request.path_params["version"]
    if raw in ("latest", "-1"):
        return versions[-1]
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if not 1 <= number < 2**31:
        raise RegistryError(422, INVALID_VERSION, f"The specified version '{raw}' is not a valid version id. "
                            "Allowed values are between [1, 2^31-1] and the string \"latest\"")
    if number > len(versions):
        raise RegistryError(404, VERSION_NOT_FOUND, f"Version {number} not found.")
    return versions[number - 1]


async def _posted_schema(request: Request) -> dict[str, Any]:
    """The Avro schema of a registration, lookup or compatibility request's body."""
    try:
        body = json.loads(await request.body())
        text = body["schema"]
        schema_type = body.get("schemaType") or "AVRO"
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RegistryError(422, INVALID_SCHEMA, 'the body must be {"schema": "<the schema as a JSON string>"}') from None
    if schema_type != "AVRO":
        raise RegistryError(422, INVALID_SCHEMA, f"this registry holds Avro schemas only, not {schema_type}")
    if body.get("references"):
        raise RegistryError(422, INVALID_SCHEMA, "diarist's schemas have no references")
    try:
        schema = json.loads(text) if isinstance(text, str) else None
        parse_schema(schema, _write_hint=False)
    except Exception as exc:  # fastavro raises several types for a schema it cannot parse
        raise RegistryError(422, INVALID_SCHEMA, f"Invalid schema: {exc}") from None
    if not isinstance(schema, dict):
        raise RegistryError(422, INVALID_SCHEMA, "Invalid schema: not one of diarist's records")
    return schema


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two schemas are the same schema (as JSON, or once names are resolved)."""
    return a == b or parse_schema(a, _write_hint=False) == parse_schema(b, _write_hint=False)


def _registered(versions: list[Version], schema: dict[str, Any]) -> Version | None:
    return next((v for v in versions if _same(v.schema, schema)), None)


# Reads.

async def schema_by_id(request: Request) -> Response:
    return answer({"schema": _schema_id(request).text})


async def schema_versions(request: Request) -> Response:
    found = _schema_id(request)
    return answer([{"subject": found.subject, "version": found.version}])


async def schema_subjects(request: Request) -> Response:
    return answer([_schema_id(request).subject])


async def schema_types(request: Request) -> Response:
    return answer(["AVRO"])


async def list_subjects(request: Request) -> Response:
    prefix = request.query_params.get("subjectPrefix", "")
    return answer([name for name in subjects() if name.startswith(prefix)])


async def subject_versions(request: Request) -> Response:
    return answer([v.version for v in _subject(request)])


async def subject_version(request: Request) -> Response:
    return answer(_version(request).registered())


async def subject_version_schema(request: Request) -> Response:
    return answer(_version(request).schema)


async def associations(request: Request) -> Response:
    """No topic is associated with one subject (the events topic carries ten record types), so a
    client's associated subject name strategy (confluent-kafka's default since 2.13) falls back to
    its configured one, and the deserializer reads by schema id as always."""
    return answer([])


async def config(request: Request) -> Response:
    if "subject" in request.path_params:
        _subject(request)
    return answer({"compatibilityLevel": COMPATIBILITY})


# Writes that read: lookup, register (of a released version), compatibility.

async def lookup(request: Request) -> Response:
    versions = _subject(request)
    found = _registered(versions, await _posted_schema(request))
    if found is None:
        raise RegistryError(404, SCHEMA_NOT_FOUND, "Schema not found")
    return answer(found.registered())


async def register(request: Request) -> Response:
    name = request.path_params["subject"]
    schema = await _posted_schema(request)
    versions = subjects().get(name)
    if versions is None:
        raise RegistryError(422, NOT_PERMITTED, f"Subject '{name}' is not one of diarist's: this registry serves "
                            "diarist's released schemas only")
    found = _registered(versions, schema)
    if found is not None:
        return answer({"id": found.id})
    if reason := registry.incompatibility(versions[-1].schema, schema):
        raise RegistryError(409, INCOMPATIBLE, f"Schema being registered is incompatible with an earlier schema for "
                            f"subject \"{name}\": {reason}")
    raise RegistryError(422, NOT_PERMITTED, f"this registry serves diarist's released schemas only; the schema is "
                        f"not a released version of {name} (release one with `python -m diarist.schemas`)")


async def compatibility(request: Request) -> Response:
    schema = await _posted_schema(request)
    against = [_version(request)] if "version" in request.path_params else _subject(request)[-1:]
    reasons = [reason for v in against if (reason := registry.incompatibility(v.schema, schema))]
    body: dict[str, Any] = {"is_compatible": not reasons}
    if request.query_params.get("verbose", "").lower() == "true":
        body["messages"] = reasons
    return answer(body)


def _answering(endpoint):
    """The endpoint, with a RegistryError answered in the registry's shape."""
    async def answered(request: Request) -> Response:
        try:
            response: Response = await endpoint(request)
            return response
        except RegistryError as exc:
            return error(exc.status, exc.code, exc.message)

    answered.__name__ = endpoint.__name__
    return answered


routes = [
    Route("/schemas/ids/{schema_id}", _answering(schema_by_id), methods=["GET"]),
    Route("/schemas/ids/{schema_id}/versions", _answering(schema_versions), methods=["GET"]),
    Route("/schemas/ids/{schema_id}/subjects", _answering(schema_subjects), methods=["GET"]),
    Route("/schemas/types", _answering(schema_types), methods=["GET"]),
    Route("/subjects", _answering(list_subjects), methods=["GET"]),
    Route("/subjects/{subject}", _answering(lookup), methods=["POST"]),
    Route("/subjects/{subject}/versions", _answering(subject_versions), methods=["GET"]),
    Route("/subjects/{subject}/versions", _answering(register), methods=["POST"]),
    Route("/subjects/{subject}/versions/{version}", _answering(subject_version), methods=["GET"]),
    Route("/subjects/{subject}/versions/{version}/schema", _answering(subject_version_schema), methods=["GET"]),
    Route("/compatibility/subjects/{subject}/versions", _answering(compatibility), methods=["POST"]),
    Route("/compatibility/subjects/{subject}/versions/{version}", _answering(compatibility), methods=["POST"]),
    Route("/associations/resources/{namespace}/{resource}", _answering(associations), methods=["GET"]),
    Route("/config", _answering(config), methods=["GET"]),
    Route("/config/{subject}", _answering(config), methods=["GET"]),
]


# OpenAPI 3.1 path items of these routes.

def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {MEDIA_TYPE: {"schema": schema}}


_ERROR = {"type": "object", "required": ["error_code", "message"],
          "properties": {"error_code": {"type": "integer", "examples": [40401]}, "message": {"type": "string"}}}
_SCHEMA_TEXT = {"type": "string", "description": "the Avro schema, as JSON text"}
_REGISTERED = {"type": "object", "required": ["subject", "version", "id", "schema"],
               "properties": {"subject": {"type": "string"}, "version": {"type": "integer"}, "id": {"type": "integer"},
                              "schema": _SCHEMA_TEXT}}
_SUBMITTED_SCHEMA = {"type": "object", "required": ["schema"],
                     "properties": {"schema": _SCHEMA_TEXT, "schemaType": {"type": "string", "enum": ["AVRO"]},
                                    "references": {"type": "array", "maxItems": 0}}}
_SUBMITTED = {"required": True, "content": {**_content(_SUBMITTED_SCHEMA),
                                            "application/json": {"schema": _SUBMITTED_SCHEMA}}}
_SECURITY = [{BEARER: []}, {BASIC: []}]


def _param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}


_ID = _param("schema_id", "a schema id (schemas/ids.json)")
_SUBJECT = _param("subject", "a message schema's full name, such as diarist.JobCreated")
_VERSION = _param("version", "a version number, or latest")


def _operation(summary: str, operation_id: str, ok: dict[str, Any], errors: dict[str, str],
               parameters: list[dict[str, Any]], body: bool = False, status: str = "200") -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary, "operationId": operation_id, "security": _SECURITY, "parameters": parameters,
        "responses": {status: {"description": "OK", "content": _content(ok)},
                      "401": {"description": "no API key, or one this service does not know (error_code 40101)",
                              "content": _content(_ERROR)},
                      **{code: {"description": why, "content": _content(_ERROR)} for code, why in errors.items()}},
    }
    if body:
        operation["requestBody"] = _SUBMITTED
    return operation


_NO_ID = {"404": "no schema has this id (40403)"}
_NO_SUBJECT = {"404": "no such subject (40401)"}
_NO_VERSION = {"404": "no such subject (40401) or version (40402)", "422": "not a version (42202)"}
_BAD_SCHEMA = {"422": "not an Avro schema (42201)"}

paths: dict[str, Any] = {
    "/schemas/ids/{schema_id}": {"get": _operation(
        "The schema with this id", "registryGetSchema",
        {"type": "object", "required": ["schema"], "properties": {"schema": _SCHEMA_TEXT}}, _NO_ID, [_ID])},
    "/schemas/ids/{schema_id}/versions": {"get": _operation(
        "The subject and version of the schema with this id", "registryGetSchemaVersions",
        {"type": "array", "items": {"type": "object", "properties": {"subject": {"type": "string"},
                                                                     "version": {"type": "integer"}}}},
        _NO_ID, [_ID])},
    "/schemas/ids/{schema_id}/subjects": {"get": _operation(
        "The subjects of the schema with this id", "registryGetSchemaSubjects",
        {"type": "array", "items": {"type": "string"}}, _NO_ID, [_ID])},
    "/schemas/types": {"get": _operation(
        "The schema types this registry holds", "registryGetSchemaTypes",
        {"type": "array", "items": {"type": "string", "enum": ["AVRO"]}}, {}, [])},
    "/subjects": {"get": _operation(
        "Every subject: one per message schema", "registryListSubjects", {"type": "array", "items": {"type": "string"}},
        {}, [{"name": "subjectPrefix", "in": "query", "required": False, "schema": {"type": "string"}}])},
    "/subjects/{subject}": {"post": _operation(
        "Whether the schema is a version of the subject, and which", "registryLookupSchema", _REGISTERED,
        {"404": "no such subject (40401), or the schema is not one of its versions (40403)", **_BAD_SCHEMA},
        [_SUBJECT], body=True)},
    "/subjects/{subject}/versions": {
        "get": _operation("The versions of a subject", "registryListVersions",
                          {"type": "array", "items": {"type": "integer"}}, _NO_SUBJECT, [_SUBJECT]),
        "post": _operation(
            "Register a schema: answers the id of a released version; nothing new is registered here",
            "registryRegisterSchema", {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
            {"409": "incompatible with the subject's latest version (409)",
             "422": "not an Avro schema (42201), or not a released version of one of diarist's subjects (42205)"},
            [_SUBJECT], body=True),
    },
    "/subjects/{subject}/versions/{version}": {"get": _operation(
        "One version of a subject", "registryGetVersion", _REGISTERED, _NO_VERSION, [_SUBJECT, _VERSION])},
    "/subjects/{subject}/versions/{version}/schema": {"get": _operation(
        "One version of a subject: the schema alone", "registryGetVersionSchema", {"type": "object"}, _NO_VERSION,
        [_SUBJECT, _VERSION])},
    "/compatibility/subjects/{subject}/versions": {"post": _operation(
        "Whether a reader on the schema reads what the subject's latest version wrote (BACKWARD)",
        "registryCheckCompatibilityLatest",
        {"type": "object", "required": ["is_compatible"],
         "properties": {"is_compatible": {"type": "boolean"}, "messages": {"type": "array", "items": {"type": "string"}}}},
        {**_NO_SUBJECT, **_BAD_SCHEMA}, [_SUBJECT], body=True)},
    "/compatibility/subjects/{subject}/versions/{version}": {"post": _operation(
        "Whether a reader on the schema reads what that version wrote (BACKWARD)", "registryCheckCompatibility",
        {"type": "object", "required": ["is_compatible"],
         "properties": {"is_compatible": {"type": "boolean"}, "messages": {"type": "array", "items": {"type": "string"}}}},
        {"404": "no such subject (40401) or version (40402)", "422": "not a version (42202) or not a schema (42201)"},
        [_SUBJECT, _VERSION], body=True)},
    "/associations/resources/{namespace}/{resource}": {"get": _operation(
        "The subjects associated with a topic: none, so clients fall back to their subject name strategy",
        "registryGetAssociations", {"type": "array", "maxItems": 0},
        {}, [_param("namespace", "the Kafka cluster (any)"), _param("resource", "a topic's name")])},
    "/config": {"get": _operation(
        "The compatibility level: BACKWARD", "registryGetConfig",
        {"type": "object", "properties": {"compatibilityLevel": {"type": "string"}}}, {}, [])},
    "/config/{subject}": {"get": _operation(
        "A subject's compatibility level: BACKWARD", "registryGetSubjectConfig",
        {"type": "object", "properties": {"compatibilityLevel": {"type": "string"}}}, _NO_SUBJECT, [_SUBJECT])},
}

surface = Surface("schema registry",
                  "The Confluent Schema Registry REST API, read side, over diarist's released Avro schemas: point "
                  "an Avro deserializer's schema.registry.url at the edge (docs/events.md).",
                  routes, paths, basic_password=True, unauthorized=unauthorized)
