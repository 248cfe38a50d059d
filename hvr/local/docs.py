"""`/docs` on the local gateway: Swagger UI over the committed OpenAPI document (docs/openapi.json), offline.

Swagger UI's files come from the `swagger-ui-py` package, which carries Swagger UI 5 (OpenAPI 3.1, the version
Powertools writes; `swagger-ui-bundle` still carries 4.x, which can't read 3.1). Only its two assets are served,
from this page's own paths: nothing is fetched from anywhere else, so the page works with no network.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from hvr.local.gateway import HttpRequest, HttpResponse
from hvr.tools.openapi import COMMITTED

PREFIX = "/docs"
ASSETS = {"swagger-ui.css": "text/css; charset=utf-8", "swagger-ui-bundle.js": "text/javascript; charset=utf-8"}
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hvr API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
// Same origin as the API: "Try it out" calls it here; "Authorize" takes an hvr API key.
window.ui = SwaggerUIBundle({url: "/docs/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
                             presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"});
</script>
</body>
</html>
"""


@cache
def _assets_dir() -> Path:
    """The package's static folder, found without importing it (its __init__ loads jinja2 for its own pages)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("swagger-ui-py is not installed: /docs has no Swagger UI to serve")
    return Path(spec.origin).parent / "static"


def docs_page(request: HttpRequest) -> HttpResponse | None:
    """The page, the document and the two assets; None for any other path."""
    path = request.raw_path.rstrip("/")
    if path == PREFIX:
        return _ok("text/html; charset=utf-8", PAGE.encode())
    if path == f"{PREFIX}/openapi.json":
        return _ok("application/json", COMMITTED.read_bytes())
    name = path.removeprefix(f"{PREFIX}/")
    if name in ASSETS:
        return _ok(ASSETS[name], (_assets_dir() / name).read_bytes())
    return None


def _ok(content_type: str, body: bytes) -> HttpResponse:
    return HttpResponse(200, [("Content-Type", content_type)], body)
