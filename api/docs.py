"""The API's own documentation: the OpenAPI document at /openapi.json and Swagger UI at /docs, and
the same for each surface that has a docs_prefix (CPqD's at /trd/v3/openapi.json and
/trd/v3/docs). No key needed.

Swagger UI's files come from an installed package (swagger-ui-py, Swagger UI 5: the first that
renders OpenAPI 3.1) and are served from here, so the pages need nothing outside the service.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from html import escape
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from diarist.api import openapi
from diarist.api.surface import Surface

ASSETS = "/docs/assets"


def _page(document_url: str, title: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{url: {json.dumps(document_url)}, dom_id: "#swagger-ui", deepLinking: true,
                              persistAuthorization: true}});
</script>
</body>
</html>
"""


def _serving(prefix: str, title: str, document: Callable[[], dict[str, Any]]) -> list[BaseRoute]:
    """The routes of one document and its Swagger UI page, under `prefix`."""
    async def serve_document(request: Request) -> Response:
        return JSONResponse(document())

    async def serve_page(request: Request) -> Response:
        return HTMLResponse(_page(f"{prefix}/openapi.json", title))

    return [Route(f"{prefix}/openapi.json", serve_document, methods=["GET"]),
            Route(f"{prefix}/docs", serve_page, methods=["GET"])]


def routes(surfaces: tuple[Surface, ...]) -> list[BaseRoute]:
    """The documents and pages of the whole service and of each surface with a docs_prefix."""
    return [
        *_serving("", "diarist API", partial(openapi.document, surfaces)),
        *(route for surface in surfaces if surface.docs_prefix
          for route in _serving(surface.docs_prefix, f"diarist: {surface.tag} API",
                                partial(openapi.document_under, surfaces, surface.docs_prefix,
                                        f"diarist: {surface.description.removesuffix('.')}"))),
        Mount(ASSETS, StaticFiles(packages=[("swagger_ui", "static")])),
    ]
