"""The API's edge below HTTP (issue 13): the one body parser, the listing cursor check, unreadable manifest lines."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.api.http import MAX_JSON_DEPTH, BodyError, is_json_media, parse_body
from router.models.campaign import CampaignSpec
from router.models.manifest import parse_header, parse_line
from router.store.errors import BadCursor
from router.store.jobs import checked_cursor


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(("body", "base64_encoded", "message"), [
    (nested(10_000), False, "nested deeper"),  # json's C scanner: RecursionError
    (nested(MAX_JSON_DEPTH + 1), False, "nested deeper"),  # under the stack limit, over ours
    ('{"a": ' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1), False, "nested deeper"),
    (base64.b64encode(b'{"prompt": "\xff"}').decode(), True, "not UTF-8"),
    ("not base64!", True, "not UTF-8"),
    ('{"prompt": "\\udc80"}', False, "not Unicode"),
    ('{"\\ud800": 1}', False, "not Unicode"),  # keys too
    ('{"duration_s": Infinity}', False, "Infinity is not JSON"),
    ('{"mode": ', False, "is not JSON: Expecting value at line 1 column 10"),
])
def test_every_unreadable_body_is_a_body_error(body: str, base64_encoded: bool, message: str) -> None:
    with pytest.raises(BodyError, match=message):
        parse_body(body, base64_encoded)


def test_a_readable_body_parses_as_json_would() -> None:
    value = {"prompt": "é \U0001f388", "metadata": json.loads(nested(MAX_JSON_DEPTH - 1))}
    text = json.dumps(value)
    assert parse_body(text, False) == value
    assert parse_body(base64.b64encode(text.encode()).decode(), True) == value
    assert parse_body(None, False) is None and parse_body("", True) is None


@pytest.mark.parametrize(("content_type", "json_"), [
    ("application/json", True), ("Application/JSON; charset=utf-8", True), ("application/problem+json", True),
    ("text/plain", False), ("application/jsonl", False), ("multipart/form-data", False), ("", False),
])
def test_json_media_types(content_type: str, json_: bool) -> None:
    assert is_json_media(content_type) is json_


KEY = "T#acme"
GOOD = {"pk": {"S": "T#acme#J#job_1"}, "gsi1pk": {"S": KEY}, "gsi1sk": {"S": "2026-11-25T12:00:00Z#job_1"}}


@pytest.mark.parametrize("cursor", [
    {"pk": "x"},
    {**GOOD, "extra": {"S": "x"}},
    {**GOOD, "gsi1sk": {"N": "1"}},
    {**GOOD, "gsi1sk": {"S": 7}},
    {**GOOD, "gsi1sk": {"S": ""}},
    {**GOOD, "gsi1sk": {"S": "x" * 1025}},
    {**GOOD, "gsi1sk": {"S": "\ud800"}},
    {**GOOD, "gsi1pk": {"S": "T#beta"}},  # another tenant's listing
    {**GOOD, "pk": {"S": "T#beta#J#job_1"}},
    {"pk": GOOD["pk"], "gsi2pk": {"S": KEY}, "gsi2sk": GOOD["gsi1sk"]},  # another index's
])
def test_a_cursor_that_is_not_this_listings_never_reaches_dynamodb(cursor: dict[str, Any]) -> None:
    with pytest.raises(BadCursor):
        checked_cursor(cursor, "gsi1", KEY, "acme")


def test_this_listings_cursor_is_the_start_key() -> None:
    assert checked_cursor(GOOD, "gsi1", KEY, "acme") == GOOD


def test_a_manifest_line_nested_past_the_stack_limit_is_an_invalid_line() -> None:
    raw = nested(30_000).encode()  # under the 64 KB line cap
    parsed = parse_line(raw, 3, "cmp_X", CampaignSpec(), datetime(2026, 11, 25, tzinfo=UTC))
    assert parsed is not None and parsed.request is None
    assert parsed.errors[0].line == 3 and "nested too deeply" in parsed.errors[0].message
    assert parse_header(raw) is None
