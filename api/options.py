"""JobOptions, defined once: the JSON Schema of the options as a client sends them.

`SCHEMA` is that definition (the OpenAPI component JobOptions), and the rest comes from it:

- `parse_options` checks each option against its property's schema (type, enum, pattern,
  minimum/maximum, lengths, maxItems, maxProperties) and refuses it with the sentence
  `refusal()` gives for it. The few rules one property's schema cannot say are written next to
  the schema: one option against another (`_cross_checks`), metadata kept as JSON text, and
  what a value becomes in the stored form (`_stored_value`).
- `STORED_SCHEMA`: the options as a job keeps them (the Avro record diarist.JobOptions, the
  TypedDict JobOptions of streams/jobs/types.py): every option present, null where it was not
  given unless it has a default, plus `api`, the surface the job came through.

null is the same as leaving an option out, except for a boolean, which must be true or false.
A "uri" is checked as a URL that Python can split (the pattern says http or https).
tests/test_options.py checks both schemas against schemas/diarist.JobOptions.avsc.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from faster_whisper.tokenizer import _LANGUAGE_CODES

from diarist.api.problems import Problem
from diarist.streams.inference.asr import DEFAULT_BATCH_SIZE
from diarist.streams.inference.weights import MODELS
from diarist.streams.jobs.types import ENGINES, JobOptions, Task

MAX_SPEAKERS = 20
MAX_RETENTION_SECONDS = 365 * 24 * 3600
MAX_METADATA = 4096
MAX_CALLBACKS = 20
MAX_BATCH_SIZE = 64
# The languages Whisper knows (openai-whisper's tokenizer has the same codes); an English-only model knows en.
LANGUAGES: frozenset[str] = frozenset(_LANGUAGE_CODES)
ENGLISH = "en"
# JSON numbers with more digits than this are read as too large for any option (api/options.loads).
MAX_DIGITS = 100

TASKS = tuple(Task)
_SPEAKERS = {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_SPEAKERS}

PROPERTIES: dict[str, dict[str, Any]] = {
    "tag": {"type": ["string", "null"], "maxLength": 256, "description": "free text to find jobs by"},
    "language": {"type": ["string", "null"], "enum": ["auto", "", *sorted(LANGUAGES), None],
                 "description": "an ISO 639 code that Whisper knows (en, es, ...), or auto (or empty) to identify it; "
                                "an English-only model takes en only"},
    "model": {"type": ["string", "null"], "enum": [*MODELS, None],
              "description": "the Whisper model; absent: the worker's default"},
    "callback_urls": {"type": ["array", "null"], "default": [], "maxItems": MAX_CALLBACKS,
                      "items": {"type": "string", "format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
                      "description": "http(s) URLs notified when the job ends; each must point to a public address "
                                     "(or one DIARIST_URL_ALLOW names)"},
    "callback_headers": {"type": ["object", "null"], "additionalProperties": {"type": "string"},
                         "maxProperties": 20, "default": {}, "description": "headers sent with each callback"},
    "metadata": {"description": f"your text, or any JSON kept as its text; at most {MAX_METADATA} characters"},
    "task": {"type": ["string", "null"], "enum": [*(task.lower() for task in TASKS), None],
             "default": Task.TRANSCRIPTION.lower()},
    "engine": {"type": ["string", "null"], "enum": [*ENGINES, None],
               "description": "the ASR engine; absent: the worker's default"},
    "diarization": {"type": "boolean", "default": True,
                    "description": "who spoke when; false: one speaker per channel"},
    "speakers_count": {**_SPEAKERS, "description": "exactly this many speakers per channel"},
    "min_speakers": dict(_SPEAKERS),
    "max_speakers": dict(_SPEAKERS),
    "clustering_threshold": {"type": ["number", "null"], "exclusiveMinimum": 0, "exclusiveMaximum": 2,
                             "description": "cosine distance under which two voices are one speaker"},
    "hints": {"type": ["array", "null"], "maxItems": 200, "default": [],
              "items": {"type": "string", "minLength": 1, "maxLength": 100},
              "description": "words or phrases to expect"},
    "delete_after_seconds": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_RETENTION_SECONDS,
                             "description": "media and result are erased this long after the job ends"},
    "batch_size": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_BATCH_SIZE,
                   "description": "30 s windows of speech that faster-whisper decodes at once; 1: one after the "
                                  f"other, each conditioned on the text before it; absent: {DEFAULT_BATCH_SIZE}. "
                                  "openai-whisper takes it and decodes one after the other"},
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "What the job is asked to do; every option is optional (null is the same as leaving it out), "
                   "and an unknown one answers 422.",
    "properties": PROPERTIES,
    "additionalProperties": False,
}

# The sentences for the options whose refusal says more than their schema's kind.
_REFUSALS: dict[str, Callable[[Any], str]] = {
    "language": lambda _: "language must be an ISO 639 code such as 'en', or 'auto'",
    "model": lambda value: (f"unknown model {value!r}; known: {', '.join(MODELS)}" if isinstance(value, str)
                            else f"model must be one of {', '.join(MODELS)}"),
    "callback_urls": lambda value: (f"callback_urls must be at most {MAX_CALLBACKS} URLs"
                                    if isinstance(value, list) and len(value) > MAX_CALLBACKS
                                    else "callback_urls must be a list of http or https URLs"),
    "callback_headers": lambda _: (f"callback_headers must be an object of at most "
                                   f"{PROPERTIES['callback_headers']['maxProperties']} header names and string values"),
    "clustering_threshold": lambda _: "clustering_threshold must be a cosine distance between 0 and 2",
    "hints": lambda _: f"hints must be a list of at most {PROPERTIES['hints']['maxItems']} words or phrases",
}


def refusal(name: str, value: Any) -> str:
    """Why this value of the option is refused, for a person."""
    if name in _REFUSALS:
        return _REFUSALS[name](value)
    schema = PROPERTIES[name]
    kind = _kinds(schema)[0]
    if "enum" in schema:
        return f"{name} must be one of {', '.join(word for word in schema['enum'] if word is not None)}"
    if kind == "integer":
        return f"{name} must be a whole number from {schema['minimum']} to {schema['maximum']}"
    if kind == "boolean":
        return f"{name} must be true or false"
    if kind == "string" and "maxLength" in schema:
        return f"{name} must be a string of at most {schema['maxLength']} characters"
    return f"{name} must be of type {kind}"


def parse_options(raw: Any, api: str = "diarist") -> JobOptions:
    """The stored JobOptions from what the client sent; 422 for anything this API does not take.

    `api` names the surface the job comes through (a facade passes its own), so that what the
    job later says of itself, such as its callbacks, speaks that surface's language."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise Problem(422, "options must be a JSON object")
    unknown = set(raw) - set(PROPERTIES)
    if unknown:
        raise Problem(422, f"unknown options: {', '.join(sorted(_printable(str(name)) for name in unknown))}")
    given: dict[str, Any] = {}
    for name, schema in PROPERTIES.items():
        value = _normalised(name, raw.get(name))
        if name not in raw or value is None and "null" in _kinds(schema):
            continue
        if not valid_unicode(value):
            raise Problem(422, f"{name} must be valid Unicode text")
        if not valid(value, schema):
            raise Problem(422, refusal(name, value))
        given[name] = value
    _cross_checks(given)
    stored = {name: _stored_value(name, given[name]) if name in given else _default(name) for name in PROPERTIES}
    return JobOptions(
        tag=stored["tag"], language=stored["language"], model=stored["model"], callback_urls=stored["callback_urls"],
        metadata=stored["metadata"], task=stored["task"], engine=stored["engine"], diarization=stored["diarization"],
        speakers_count=stored["speakers_count"], min_speakers=stored["min_speakers"],
        max_speakers=stored["max_speakers"], clustering_threshold=stored["clustering_threshold"],
        hints=stored["hints"], delete_after_seconds=stored["delete_after_seconds"],
        callback_headers=stored["callback_headers"], api=api, batch_size=stored["batch_size"])


def _normalised(name: str, value: Any) -> Any:
    """The value as its schema reads it: a task in any case, an empty task as none."""
    if name == "task" and isinstance(value, str):
        return value.lower() or None
    return value


def _cross_checks(given: dict[str, Any]) -> None:
    """The rules that span options: each option is valid on its own by now."""
    low, high = given.get("min_speakers"), given.get("max_speakers")
    if low is not None and high is not None and low > high:
        raise Problem(422, "min_speakers is more than max_speakers")
    model = given.get("model")
    if model is not None and (refused := language_refusal(given.get("language"), model)):
        raise Problem(422, refused)
    if (given.get("task") == Task.LANGUAGE_IDENTIFICATION.lower() and model is not None
            and not MODELS[model].multilingual):
        multilingual = next(name for name, info in MODELS.items() if info.multilingual)
        raise Problem(422, f"language identification needs a multilingual model, such as {multilingual}")
    if "metadata" in given and not isinstance(given["metadata"], str):
        try:
            given["metadata"] = json.dumps(given["metadata"], allow_nan=False)
        except (ValueError, TypeError, RecursionError):
            raise Problem(422, "metadata must be text or JSON") from None
    if len(given.get("metadata") or "") > MAX_METADATA:
        raise Problem(422, f"metadata must be at most {MAX_METADATA} characters")


def language_refusal(language: str | None, model: str) -> str | None:
    """Why a model cannot take the language asked for (a code LANGUAGES has, or auto/empty/None); None if it can."""
    info = MODELS.get(model)
    if info is None or info.multilingual or language in (None, "", "auto", ENGLISH):
        return None
    return f"the model {model} knows English only: language must be {ENGLISH} or auto"


def _stored_value(name: str, value: Any) -> Any:
    """A valid option as the job keeps it."""
    if name == "task":
        return Task(value.upper())
    if name == "language" and value in ("auto", ""):
        return None
    if name == "clustering_threshold":
        return float(value)
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def _default(name: str) -> Any:
    """An option not given, as the job keeps it: its default, else null."""
    schema = PROPERTIES[name]
    return _stored_value(name, schema["default"]) if "default" in schema else None


# -- the schema's checks ------------------------------------------------------------------------

def _kinds(schema: dict[str, Any]) -> list[str]:
    kinds = schema.get("type", [])
    return [kinds] if isinstance(kinds, str) else list(kinds)


def _http_url(value: str) -> bool:
    try:
        return urlsplit(value).scheme in ("http", "https")
    except ValueError:  # such as an unclosed [IPv6 address
        return False


FORMATS: dict[str, Callable[[str], bool]] = {"uri": _http_url}


def valid(value: Any, schema: dict[str, Any]) -> bool:
    """Whether the value passes the schema's checks: the subset of JSON Schema that SCHEMA uses."""
    kinds = _kinds(schema)
    if kinds and not any(_is(value, kind) for kind in kinds):
        return False
    if "enum" in schema and not any(value == word and type(value) is type(word) for word in schema["enum"]):
        return False
    if isinstance(value, str):
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            return False
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            return False
        if "format" in schema and not FORMATS[schema["format"]](value):
            return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"] or "maximum" in schema and value > schema["maximum"]:
            return False
        if ("exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]
                or "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]):
            return False
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            return False
        return all(valid(item, schema.get("items", {})) for item in value)
    if isinstance(value, dict):
        if len(value) > schema.get("maxProperties", len(value)):
            return False
        values = schema.get("additionalProperties", {})
        return all(isinstance(key, str) and valid(item, values) for key, item in value.items())
    return True


def _pattern(pattern: str) -> re.Pattern[str]:
    """A JSON Schema pattern (ECMA-262, unanchored) as Python reads it: ECMA's $ ends the text, as \\Z does."""
    return re.compile(re.sub(r"(?<!\\)\$$", r"\\Z", pattern))


def _is(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return (isinstance(value, int) and not isinstance(value, bool)
                or isinstance(value, float) and math.isfinite(value))
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    raise ValueError(f"no check for the JSON Schema type {kind!r}")


def valid_unicode(value: Any) -> bool:
    """Whether every string in the value (keys too, at any depth) is valid Unicode: no lone surrogate."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            pending += item
    return True


def _printable(text: str) -> str:
    """The text, with anything that is not valid Unicode written as an escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def loads(text: str | bytes) -> Any:
    """JSON, with numbers of more than MAX_DIGITS digits read as infinite (so that every option
    refuses them) and nesting too deep for the parser a ValueError, like any other bad JSON."""
    try:
        return json.loads(text, parse_int=_integer)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def _integer(digits: str) -> int | float:
    if len(digits.lstrip("-")) <= MAX_DIGITS:
        return int(digits)
    return -math.inf if digits.startswith("-") else math.inf


# -- the stored form ------------------------------------------------------------------------------

def _stored_property(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    if name == "task":
        return {"type": "string", "enum": [task.value for task in TASKS]}
    kinds = [kind for kind in _kinds(schema) if kind != "null"] or ["string"]  # any JSON is kept as its text
    stored: dict[str, Any] = {"type": kinds[0] if "default" in schema else [kinds[0], "null"]}
    if "items" in schema:
        stored["items"] = {"type": schema["items"]["type"]}
    if "additionalProperties" in schema:
        stored["additionalProperties"] = {"type": schema["additionalProperties"]["type"]}
    return stored


STORED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The job's JobOptions as it took them, every one present: null, [] or {} where not given.",
    "required": ["api", *PROPERTIES],
    "properties": {
        "api": {"type": "string", "description": "the API the job was created through"},
        **{name: _stored_property(name, schema) for name, schema in PROPERTIES.items()},
    },
}
