"""`/` on the local gateway: the web console (hvr/console/), a single page that talks only to the public API.

The console's files ship in the `hvr` package (hvr/console/) and are served from this page's own paths, `/` and
`/console/<file>`, so the console and the API share an origin: no CORS for the API, and the key the user pastes is
sent only as an Authorization header. In AWS the same files are served by CloudFront beside the API
(infra/template.yaml, ConsoleDistribution). Nothing is fetched from anywhere else: it works with no network.
"""

from __future__ import annotations

from importlib import resources

from hvr.local.gateway import HttpRequest, HttpResponse

PREFIX = "/console"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
# Scripts and styles from this origin only; media and the presigned upload PUTs go to the bucket's own origin.
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
          "media-src 'self' http: https: blob:; connect-src 'self' http: https:; object-src 'none'; "
          "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def console_files() -> dict[str, bytes]:
    """Every file of the console, by name (what the gateway serves and what a deploy uploads)."""
    folder = resources.files("hvr") / "console"
    return {entry.name: entry.read_bytes() for entry in folder.iterdir()
            if entry.is_file() and any(entry.name.endswith(ext) for ext in TYPES)}


def console_page(request: HttpRequest) -> HttpResponse | None:
    """The page at `/` and its files under `/console/`; None for any other path."""
    path = request.raw_path
    if path in ("/", "/index.html"):
        name = "index.html"
    elif path.startswith(f"{PREFIX}/"):
        name = path.removeprefix(f"{PREFIX}/")
    else:
        return None
    suffix = name[name.rfind("."):] if "." in name else ""
    if "/" in name or suffix not in TYPES:
        return None
    body = console_files().get(name)
    if body is None:
        return None
    headers = [("Content-Type", TYPES[suffix]), ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff")]
    if suffix == ".html":
        headers += [("Content-Security-Policy", POLICY), ("Referrer-Policy", "no-referrer")]
    return HttpResponse(200, headers, body)
