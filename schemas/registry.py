"""Released schema versions and their stable ids.

Every message schema has a current definition (`<fullname>.avsc` beside this file) and released
versions (`released/<fullname>.v<N>.avsc`, fully expanded and frozen). Schema ids are the
numbers in `ids.json`, given once at release and never reused, so that the ids framed into
events stay meaningful for every consumer, whoever reads the topic later.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import load_schema
from fastavro.utils import generate_many

SCHEMA_DIR = Path(__file__).parent
RELEASED_DIR = SCHEMA_DIR / "released"
IDS_FILE = SCHEMA_DIR / "ids.json"

# Schemas that frame a message of their own (topic value or table value). The rest are the
# named types they are built from.
MESSAGES = (
    "diarist.JobCreated",
    "diarist.JobStarted",
    "diarist.JobDiarized",
    "diarist.JobProgress",
    "diarist.JobCompleted",
    "diarist.JobFailed",
    "diarist.JobStopped",
    "diarist.JobRetried",
    "diarist.JobDeleted",
    "diarist.JobCallbackFailed",
    "diarist.MediaSubmitted",
    "diarist.Job",
    "diarist.InferenceHeartbeat",
)


@dataclass(frozen=True)
class Release:
    name: str
    version: int
    schema_id: int
    schema: dict


def current_schema(name: str) -> dict:
    """The schema as defined now, with every named type it uses expanded."""
    return load_schema(SCHEMA_DIR / f"{name}.avsc", _write_hint=False)


def _release_path(name: str, version: int) -> Path:
    return RELEASED_DIR / f"{name}.v{version}.avsc"


def _load_ids() -> dict[str, list[int]]:
    return json.loads(IDS_FILE.read_text()) if IDS_FILE.exists() else {}


def releases(name: str) -> list[Release]:
    """Every released version of a message schema, oldest first."""
    return [
        Release(name, version, schema_id, json.loads(_release_path(name, version).read_text()))
        for version, schema_id in enumerate(_load_ids().get(name, []), start=1)
    ]


def incompatibility(old: dict, new: dict, samples: int = 200) -> str | None:
    """Why a reader on `new` cannot read what `old` wrote (backward compatibility), or None.

    Checked by resolving random records written with the old schema, which catches what
    breaks consumers in practice: a field added without a default, a type changed, an enum
    symbol or union branch removed.
    """
    import io

    writer, reader = parse_schema(old, _write_hint=False), parse_schema(new, _write_hint=False)
    for record in generate_many(writer, samples):
        out = io.BytesIO()
        schemaless_writer(out, writer, record)
        out.seek(0)
        try:
            schemaless_reader(out, writer, reader)
        except Exception as exc:  # fastavro raises several types for a failed resolution
            return f"{type(exc).__name__}: {exc}"
    return None


def release_changed() -> list[Release]:
    """Freezes every message schema whose current definition differs from its last release.

    This is the one way to change a schema: edit the .avsc, run `python -m diarist.schemas`,
    commit the new released file and ids.json. The compatibility tests then check it.
    """
    ids = _load_ids()
    next_id = max((i for versions in ids.values() for i in versions), default=0) + 1
    made = []
    for name in MESSAGES:
        schema = current_schema(name)
        versions = ids.setdefault(name, [])
        if versions and json.loads(_release_path(name, len(versions)).read_text()) == schema:
            continue
        if versions:
            previous = json.loads(_release_path(name, len(versions)).read_text())
            if reason := incompatibility(previous, schema):
                raise ValueError(f"{name}: the change breaks backward compatibility ({reason})")
        versions.append(next_id)
        RELEASED_DIR.mkdir(exist_ok=True)
        _release_path(name, len(versions)).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        made.append(Release(name, len(versions), next_id, schema))
        next_id += 1
    IDS_FILE.write_text(json.dumps(ids, indent=1) + "\n")
    return made
