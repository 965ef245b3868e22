"""Idempotency-Key on the routes that create jobs: the same key with the same request gives back
the same job, as the first answer had it; the same key with another request answers 422.

No store of keys is needed: a key names its job. The job id is a UUID5 of a hash of the API key
(its SHA-256), the surface and the Idempotency-Key, so keys are per API key, and the jobs table
(RocksDB, with its changelog in Kafka) remembers them across restarts, found by any jobs worker
through the job service. The job's spec keeps that hash and a fingerprint of the request
(diarist.Idempotency), and the job service tells a repeat from another request by them
(JobService.create and .earlier). docs/design.md says why the fingerprint holds a media URL
rather than what was fetched from it.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from diarist.api.auth import API_KEY
from diarist.api.problems import Problem
from diarist.api.surface import Surface
from diarist.streams.jobs.service import Once, StoredMedia

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
MISMATCH = "the Idempotency-Key was used for a different request"

# The OpenAPI header parameter of every create operation; api/limits.py knows the create routes by it.
PARAMETER: dict[str, Any] = {
    "name": HEADER, "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH, "pattern": "^[\\x20-\\x7e]+$"},
    "description": "Makes the create safe to repeat: the same key with the same request (per API key) answers the "
                   "first answer's status and body, and makes no second job; with a different request it answers "
                   f"422. At most {MAX_LENGTH} printable ASCII characters (400 otherwise). Kept as long as the job "
                   "record is (records are never purged)."}


@dataclass(frozen=True)
class IdempotencyKey:
    """A request's Idempotency-Key, in the scope it holds in: the API key and the surface."""
    surface: str
    key: str  # SHA-256 (hex) of the API key's SHA-256, the surface and the header's value

    @property
    def job_id(self) -> str:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"diarist:idempotency:{self.key}").hex

    @property
    def request_id(self) -> str:
        """A request id for an API that lets the service make one up (DeepAffects): the same for every repeat."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"diarist:idempotency-request:{self.key}"))

    def once(self, request: Request, fields: Any, job_id: str | None = None) -> Once:
        """The create this request makes at most once. `fields` are what it asks for, as the service
        reads them (options normalised), with its media as `media_facts` or its URL; `job_id` is for
        an API whose job ids come from elsewhere (DeepAffects' request_id)."""
        fingerprint = _sha256({"surface": self.surface, "route": f"{request.method} {request.url.path}",
                               "request": fields})
        return Once(job_id or self.job_id, self.key, fingerprint)


def key_of(request: Request, surface: str) -> IdempotencyKey | None:
    """The request's Idempotency-Key; None without one; 400 when it is empty, too long or not printable ASCII."""
    value = request.headers.get(HEADER)
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_LENGTH or not all(" " <= char <= "~" for char in value):
        raise Problem(400, f"the {HEADER} header must be 1 to {MAX_LENGTH} printable ASCII characters")
    api_key = hashlib.sha256(str(request.scope.get(API_KEY, "")).encode()).hexdigest()
    return IdempotencyKey(surface, _sha256([api_key, surface, value]))


def media_facts(media: StoredMedia) -> dict[str, Any]:
    """What a fingerprint holds of uploaded media."""
    return {"md5": media.ref["md5"], "size": media.ref["size"], "filename": media.filename}


def create_routes(surfaces: tuple[Surface, ...]) -> list[BaseRoute]:
    """The routes that create jobs: those whose documented operation takes an Idempotency-Key."""
    return [route for surface in surfaces for route in surface.routes
            if isinstance(route, Route) and any(
                PARAMETER in surface.paths.get(route.path, {}).get(method.lower(), {}).get("parameters", [])
                for method in route.methods or ())]


def _sha256(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
