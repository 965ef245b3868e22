"""DeepAffects async facade (diarization and transcription submissions, async status): a thin translation onto the job core."""
from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []

# OpenAPI 3.1 path items of these routes, merged into the service's document by api/openapi.py.
paths: dict[str, Any] = {}
