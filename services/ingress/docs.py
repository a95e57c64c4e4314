"""``GET /openapi.json`` and the ``/docs`` page (Swagger UI shipped in this package).

The page and its assets come from ``services/ingress/static/`` (package data, see
``static/VENDORED.md``): nothing is loaded from another host, so the page works
offline and under a strict Content-Security-Policy.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from runstream.services.ingress.openapi_paths import document
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

ASSETS = Path(__file__).with_name("static")

# Relative URLs: /docs -> /docs/assets/..., /openapi.json; also behind a path prefix.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>runstream API</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/assets/swagger-ui-bundle.js" charset="utf-8"></script>
  <script src="docs/assets/runstream-docs.js" charset="utf-8"></script>
</body>
</html>
"""


async def openapi_json(request: Request) -> Response:
    return Response(orjson.dumps(document()), media_type="application/json")


async def docs_page(request: Request) -> Response:
    return HTMLResponse(PAGE)


def docs_routes() -> list[BaseRoute]:
    """The routes of the document and of the docs page with its assets."""
    return [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs_page, methods=["GET"]),
        Mount("/docs/assets", StaticFiles(directory=ASSETS), name="docs-assets"),
    ]
