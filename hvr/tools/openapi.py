"""Write the API's OpenAPI document to `docs/openapi.json`, where `/docs` (hvr dev) and readers find it:
`python -m hvr.tools.openapi` (`--check` only compares, and exits 1 if the committed one differs).

The document is generated from the routes and models (functions.api.handler.openapi_document, also served live
at `GET /v1/openapi.json`); the committed copy lets it be read, diffed in review and browsed offline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def current() -> str:
    """The document as the code makes it now, in the committed file's layout."""
    from functions.api.handler import openapi_document

    return json.dumps(json.loads(openapi_document()), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hvr.tools.openapi", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if docs/openapi.json differs")
    args = parser.parse_args(argv)
    text = current()
    if args.check:
        if not COMMITTED.exists() or COMMITTED.read_text(encoding="utf-8") != text:
            print(f"{COMMITTED} differs from the API: run python -m hvr.tools.openapi", file=sys.stderr)
            return 1
        return 0
    COMMITTED.write_text(text, encoding="utf-8")
    print(f"wrote {COMMITTED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
