"""docs/openapi.json (what /docs shows) is the document the API's code makes: regenerate it with
`python -m hvr.tools.openapi` when a route or model changes."""

import json

from hvr.tools.openapi import COMMITTED, current


def test_the_committed_openapi_document_is_the_code_s() -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    made = json.loads(current())
    changed = sorted({*committed["paths"], *made["paths"]} - {p for p in made["paths"] if committed["paths"].get(p)
                                                               == made["paths"][p]})
    assert committed == made, f"docs/openapi.json is stale (paths differing: {changed}): python -m hvr.tools.openapi"
    assert COMMITTED.read_text(encoding="utf-8") == current()  # and laid out as the tool writes it
