"""JobOptions, defined once (api/options.py): the schema against the Avro record, and validation
against the schema, with the sentences clients have always been given."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from diarist.api import options
from diarist.api.problems import Problem
from diarist.schemas import codec, registry
from diarist.streams.jobs import lifecycle as lc
from diarist.streams.jobs.types import Task

pytestmark = pytest.mark.unit

pytestmark = pytest.mark.unit

AVRO = {field["name"]: field for field in registry.current_schema("diarist.JobOptions")["fields"]}
JSON_TYPES = {"string": "string", "int": "integer", "long": "integer", "float": "number", "double": "number",
              "boolean": "boolean", "array": "array", "map": "object", "enum": "string"}


def _avro(field: dict) -> tuple[str, bool]:
    """(JSON type, nullable) of an Avro field."""
    kind = field["type"]
    nullable = isinstance(kind, list) and "null" in kind
    if isinstance(kind, list):
        (kind,) = [branch for branch in kind if branch != "null"]
    if isinstance(kind, dict):
        kind = kind["type"]
    return JSON_TYPES[kind], nullable


def refused(raw: object) -> str:
    with pytest.raises(Problem) as refusal:
        options.parse_options(raw)
    assert refusal.value.status == 422
    return refusal.value.detail


def test_the_options_a_client_sends_are_the_avro_fields_but_api():
    assert set(options.SCHEMA["properties"]) == set(AVRO) - {"api"}
    assert options.SCHEMA["additionalProperties"] is False


def test_the_stored_options_are_the_avro_record():
    stored = options.STORED_SCHEMA
    assert set(stored["required"]) == set(stored["properties"]) == set(AVRO)
    for name, field in AVRO.items():
        kind, nullable = _avro(field)
        types = stored["properties"][name]["type"]
        types = types if isinstance(types, list) else [types]
        assert types[0] == kind, name
        assert ("null" in types) == nullable, name
    assert stored["properties"]["task"]["enum"] == AVRO["task"]["type"]["symbols"]


def test_both_schemas_are_valid_in_an_openapi_document():
    OAS31Validator.check_schema(options.SCHEMA)
    OAS31Validator.check_schema(options.STORED_SCHEMA)
    validate({"openapi": "3.1.0", "info": {"title": "options", "version": "1"}, "paths": {},
              "components": {"schemas": {"JobOptions": options.SCHEMA, "StoredOptions": options.STORED_SCHEMA}}})


def test_nothing_given_is_every_option_at_its_default():
    assert options.parse_options(None) == options.parse_options({}) == {
        "api": "diarist", "tag": None, "language": None, "model": None, "callback_urls": [], "callback_headers": {},
        "metadata": None, "delete_after_seconds": None, "task": "TRANSCRIPTION", "engine": None,
        "diarization": True, "speakers_count": None, "min_speakers": None, "max_speakers": None,
        "clustering_threshold": None, "hints": [], "batch_size": None}


ACCEPTED = [
    ({"tag": "t" * 256, "language": "pt", "model": "base", "engine": "openai-whisper"},
     {"tag": "t" * 256, "language": "pt", "model": "base", "engine": "openai-whisper"}),
    ({"language": "auto"}, {"language": None}),
    ({"language": ""}, {"language": None}),
    ({"metadata": {"order": 66}}, {"metadata": '{"order": 66}'}),
    ({"metadata": "plain text"}, {"metadata": "plain text"}),
    ({"task": "language_identification", "model": "base"}, {"task": Task.LANGUAGE_IDENTIFICATION, "model": "base"}),
    ({"task": "LANGUAGE_IDENTIFICATION"}, {"task": Task.LANGUAGE_IDENTIFICATION}),  # as the facades pass it
    ({"task": None, "tag": None, "hints": None, "callback_urls": None, "callback_headers": None}, {}),
    ({"diarization": False, "speakers_count": 2}, {"diarization": False, "speakers_count": 2}),
    ({"min_speakers": 2, "max_speakers": 2}, {"min_speakers": 2, "max_speakers": 2}),
    ({"clustering_threshold": 1}, {"clustering_threshold": 1.0}),
    ({"hints": ["Kafka", "Faust"] * 100}, {"hints": ["Kafka", "Faust"] * 100}),
    ({"callback_urls": ["https://example.com/hook", "HTTP://example.com/x"], "callback_headers": {"X-A": "b"}},
     {"callback_urls": ["https://example.com/hook", "HTTP://example.com/x"], "callback_headers": {"X-A": "b"}}),
    ({"delete_after_seconds": 0}, {"delete_after_seconds": 0}),
    ({"delete_after_seconds": 31536000}, {"delete_after_seconds": 31536000}),
    ({"batch_size": 1}, {"batch_size": 1}),
    ({"batch_size": 64, "engine": "openai-whisper"}, {"batch_size": 64, "engine": "openai-whisper"}),
    ({"batch_size": None}, {}),
]


@pytest.mark.parametrize("raw, taken", ACCEPTED)
def test_valid_options_are_taken(raw, taken):
    stored = options.parse_options(raw)
    assert stored == {**options.parse_options({}), **taken}
    OAS31Validator(options.STORED_SCHEMA).validate(json.loads(json.dumps(stored)))
    _survives_avro(stored)


# The sentences of the validation that api/ingest.py did before this module; clients see them.
REFUSED = [
    (["tag"], "options must be a JSON object"),
    ("tag", "options must be a JSON object"),
    ({"colour": "red", "flavour": 1}, "unknown options: colour, flavour"),
    ({"tag": "x" * 257}, "tag must be a string of at most 256 characters"),
    ({"tag": 5}, "tag must be a string of at most 256 characters"),
    ({"language": "english"}, "language must be an ISO 639 code such as 'en', or 'auto'"),
    ({"language": "EN"}, "language must be an ISO 639 code such as 'en', or 'auto'"),
    ({"language": "en\n"}, "language must be an ISO 639 code such as 'en', or 'auto'"),
    ({"model": "huge"}, "unknown model 'huge'; known: base, tiny.en"),
    ({"callback_urls": ["file:///etc/passwd"]}, "callback_urls must be a list of http or https URLs"),
    ({"callback_urls": "https://example.com"}, "callback_urls must be a list of http or https URLs"),
    ({"callback_urls": [7]}, "callback_urls must be a list of http or https URLs"),
    ({"callback_headers": {f"h{i}": "v" for i in range(21)}},
     "callback_headers must be an object of at most 20 header names and string values"),
    ({"callback_headers": {"X-A": 1}},
     "callback_headers must be an object of at most 20 header names and string values"),
    ({"metadata": "m" * 4097}, "metadata must be at most 4096 characters"),
    ({"metadata": {"m": "m" * 5000}}, "metadata must be at most 4096 characters"),
    ({"delete_after_seconds": -1}, "delete_after_seconds must be a whole number from 0 to 31536000"),
    ({"delete_after_seconds": 31536001}, "delete_after_seconds must be a whole number from 0 to 31536000"),
    ({"delete_after_seconds": 1.5}, "delete_after_seconds must be a whole number from 0 to 31536000"),
    ({"delete_after_seconds": True}, "delete_after_seconds must be a whole number from 0 to 31536000"),
    ({"batch_size": 0}, "batch_size must be a whole number from 1 to 64"),
    ({"batch_size": 65}, "batch_size must be a whole number from 1 to 64"),
    ({"batch_size": 2.5}, "batch_size must be a whole number from 1 to 64"),
    ({"batch_size": "8"}, "batch_size must be a whole number from 1 to 64"),
    ({"batch_size": True}, "batch_size must be a whole number from 1 to 64"),
    ({"task": "translate"}, "task must be one of transcription, language_identification"),
    ({"task": 5}, "task must be one of transcription, language_identification"),
    ({"engine": "kaldi"}, "engine must be one of faster-whisper, openai-whisper"),
    ({"diarization": "yes"}, "diarization must be true or false"),
    ({"diarization": None}, "diarization must be true or false"),
    ({"speakers_count": 0}, "speakers_count must be a whole number from 1 to 20"),
    ({"min_speakers": 21}, "min_speakers must be a whole number from 1 to 20"),
    ({"max_speakers": "2"}, "max_speakers must be a whole number from 1 to 20"),
    ({"min_speakers": 3, "max_speakers": 2}, "min_speakers is more than max_speakers"),
    ({"clustering_threshold": 5}, "clustering_threshold must be a cosine distance between 0 and 2"),
    ({"clustering_threshold": 0}, "clustering_threshold must be a cosine distance between 0 and 2"),
    ({"hints": "kafka"}, "hints must be a list of at most 200 words or phrases"),
    ({"hints": ["w"] * 201}, "hints must be a list of at most 200 words or phrases"),
    ({"hints": [""]}, "hints must be a list of at most 200 words or phrases"),
    ({"hints": ["w" * 101]}, "hints must be a list of at most 200 words or phrases"),
    ({"task": "language_identification", "model": "tiny.en"},
     "language identification needs a multilingual model, such as base"),
    # Since the URL guard and the language check (issue 9): a code Whisper does not know, a language
    # an English-only model cannot take, more callback URLs than a job takes.
    ({"language": "xx"}, "language must be an ISO 639 code such as 'en', or 'auto'"),
    ({"language": "zz"}, "language must be an ISO 639 code such as 'en', or 'auto'"),
    ({"language": "es", "model": "tiny.en"}, "the model tiny.en knows English only: language must be en or auto"),
    ({"callback_urls": ["https://example.com/a"] * 21}, "callback_urls must be at most 20 URLs"),
]


def test_languages_are_whispers():
    import whisper.tokenizer

    assert options.LANGUAGES == set(whisper.tokenizer.LANGUAGES) and "en" in options.LANGUAGES
    assert options.language_refusal("en", "tiny.en") is None and options.language_refusal(None, "tiny.en") is None
    assert options.language_refusal("pt", "base") is None
    assert options.parse_options({"language": "pt", "model": "base"})["language"] == "pt"
    assert options.parse_options({"language": "en", "model": "tiny.en"})["language"] == "en"


@pytest.mark.parametrize("raw, detail", REFUSED)
def test_invalid_options_are_422_with_the_sentences_clients_know(raw, detail):
    assert refused(raw) == detail


# Inputs that once made a server error (issue 9): each is a 422 now.
HOSTILE = [
    ({"model": {}}, "model must be one of base, tiny.en"),
    ({"model": []}, "model must be one of base, tiny.en"),
    ({"speakers_count": 10**4000}, "speakers_count must be a whole number from 1 to 20"),
    ({"delete_after_seconds": -(10**4000)}, "delete_after_seconds must be a whole number from 0 to 31536000"),
    ({"clustering_threshold": 10**4000}, "clustering_threshold must be a cosine distance between 0 and 2"),
    ({"clustering_threshold": math.nan}, "clustering_threshold must be a cosine distance between 0 and 2"),
    ({"clustering_threshold": math.inf}, "clustering_threshold must be a cosine distance between 0 and 2"),
    ({"clustering_threshold": 1e308 * 10}, "clustering_threshold must be a cosine distance between 0 and 2"),
    ({"metadata": {"x": math.nan}}, "metadata must be text or JSON"),
    ({"callback_urls": ["http://[::1"]}, "callback_urls must be a list of http or https URLs"),
    ({"tag": "\ud800"}, "tag must be valid Unicode text"),
    ({"language": "e\udc00"}, "language must be valid Unicode text"),
    ({"model": "\ud800"}, "model must be valid Unicode text"),
    ({"metadata": "\ud800"}, "metadata must be valid Unicode text"),
    ({"metadata": {"\ud800": 1}}, "metadata must be valid Unicode text"),
    ({"hints": ["ok", "\ud800"]}, "hints must be valid Unicode text"),
    ({"callback_urls": ["https://example.com/\ud800"]}, "callback_urls must be valid Unicode text"),
    ({"callback_headers": {"X-\ud800": "v"}}, "callback_headers must be valid Unicode text"),
    ({"task": "\ud800"}, "task must be valid Unicode text"),
    ({"\ud800": 1}, "unknown options: \\ud800"),
]


@pytest.mark.parametrize("raw, detail", HOSTILE)
def test_hostile_options_are_422_not_a_server_error(raw, detail):
    detail_given = refused(raw)
    assert detail_given == detail
    detail_given.encode("utf-8")  # the problem document can be written


def test_json_text_with_huge_numbers_or_deep_nesting_reads_as_refusable():
    assert options.loads('{"speakers_count": ' + "9" * 5000 + "}") == {"speakers_count": math.inf}
    assert options.loads("-" + "9" * 5000) == -math.inf
    assert options.loads("12") == 12
    assert refused(options.loads('{"delete_after_seconds": ' + "1" * 5000 + "}")).startswith("delete_after_seconds")
    assert refused(options.loads('{"metadata": [' + "1" * 5000 + "]}")) == "metadata must be text or JSON"
    with pytest.raises(ValueError):
        options.loads('{"metadata": ' + "[" * 100_000 + "]" * 100_000 + "}")


def _survives_avro(stored: dict) -> None:
    spec = {"filename": "a.wav", "media": {"key": "k", "md5": "0" * 32, "size": 1, "content_type": None},
            "options": stored}
    event = lc.make_event("j", 1, spec=spec)
    assert codec().decode(codec().encode(lc.CREATED, event))[1]["spec"]["options"] == stored


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
FIELD_VALUES = {name: JSON for name in options.PROPERTIES}
FIELD_VALUES.update({
    "language": st.sampled_from(["en", "pt", "auto", "", "xx", "EN"]) | JSON,
    "model": st.sampled_from(["base", "tiny.en"]) | JSON,
    "task": st.sampled_from(["transcription", "language_identification", "TRANSCRIPTION"]) | JSON,
    "engine": st.sampled_from(["faster-whisper", "openai-whisper"]) | JSON,
    "callback_urls": st.lists(st.sampled_from(["https://example.com/a", "ftp://x"]) | st.text(max_size=9), max_size=3),
    "hints": st.lists(st.text(max_size=12), max_size=3),
    "speakers_count": st.integers(-1, 22) | JSON,
    "clustering_threshold": st.floats(-1, 3) | JSON,
    "delete_after_seconds": st.integers(-1, 10**8) | JSON,
    "batch_size": st.integers(-1, 70) | JSON,
})


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional=FIELD_VALUES))
def test_any_options_are_taken_as_the_schema_says_or_refused_with_a_422(raw):
    try:
        stored = options.parse_options(raw)
    except Problem as refusal:
        assert refusal.status == 422
        refusal.detail.encode("utf-8")
        return
    # What is taken is valid by the document (a task's case aside, which the service forgives)...
    sent = {**raw, "task": raw["task"].lower()} if isinstance(raw.get("task"), str) and raw["task"] else raw
    sent = {name: value for name, value in sent.items() if not (name == "task" and value == "")}
    assert OAS31Validator(options.SCHEMA).is_valid(sent), sent
    # ...and what is kept is valid by the stored schema and by Avro.
    OAS31Validator(options.STORED_SCHEMA).validate(json.loads(json.dumps(stored)))
    _survives_avro(stored)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional=FIELD_VALUES))
def test_what_the_document_calls_valid_is_taken(raw):
    """The other way round: an input the JSON Schema accepts is refused only by a rule written
    beside the schema (one option against another, metadata's length as text)."""
    if not OAS31Validator(options.SCHEMA).is_valid(raw):
        return
    try:
        options.parse_options(raw)
    except Problem as refusal:
        assert refusal.detail in ("min_speakers is more than max_speakers", "metadata must be text or JSON",
                                  "metadata must be at most 4096 characters",
                                  "language identification needs a multilingual model, such as base",
                                  "the model tiny.en knows English only: language must be en or auto",
                                  ) or refusal.detail.endswith("must be valid Unicode text"), refusal.detail


def test_the_openapi_document_takes_both_schemas_from_here():
    from diarist.api import openapi

    assert openapi.COMPONENTS["schemas"]["JobOptions"] is options.SCHEMA
    assert openapi.JOB["properties"]["options"] is options.STORED_SCHEMA
