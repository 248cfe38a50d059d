"""Manifests: header and line parsing, queue bodies, keys and ids, and byte-exact streaming of lines from S3."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from pydantic import ValidationError

from router.models.campaign import CampaignCreate, CampaignSpec, campaign_id, item_job_id
from router.models.campaign_queue import CampaignMessage, ManifestDrop, manifest_key_parts, parse_queue_body
from router.models.common import Priority
from router.models.manifest import MAX_LINE_BYTES, parse_header, parse_line
from router.store.campaigns import ManifestStore

CREATED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SPEC = CampaignSpec(deadline_s=86400, defaults={"mode": "t2v", "resolution": "480p", "quality": "standard"})


def line(data: Any) -> bytes:
    return json.dumps(data).encode()


# --- header -------------------------------------------------------------------------------------------------------


def test_a_header_line_is_the_campaign_spec() -> None:
    spec = parse_header(line({"campaign": {"name": "bf", "budget_usd": "250.00", "deadline_s": 3600,
                                           "defaults": {"quality": "draft"}}}))
    assert spec is not None and spec.name == "bf" and spec.budget_usd == Decimal("250.00")
    assert spec.priority is Priority.BATCH and spec.resolved_deadline(CREATED) == CREATED + timedelta(hours=1)


@pytest.mark.parametrize("raw", [line({"mode": "t2v", "prompt": "x"}), b"not json", line(["campaign"]),
                                 line({"campaign": {}, "prompt": "x"})])
def test_a_first_line_that_is_not_a_header_is_an_item(raw: bytes) -> None:
    assert parse_header(raw) is None


def test_a_bad_header_names_its_fields() -> None:
    with pytest.raises(ValueError, match=r"campaign\.budget_usd: .*campaign\.colour: unknown field"):
        parse_header(line({"campaign": {"budget_usd": "-1", "colour": "red"}}))
    with pytest.raises(ValueError, match="the campaign's own to set"):
        parse_header(line({"campaign": {"defaults": {"deadline_s": 60}}}))


# --- lines --------------------------------------------------------------------------------------------------------


def test_defaults_merge_under_the_items_own_fields_and_the_campaign_deadline_applies() -> None:
    parsed = parse_line(line({"item_id": "a1", "prompt": "boat", "quality": "premium"}), 2, "cmp_X", SPEC, CREATED)
    assert parsed is not None and not parsed.errors and parsed.item_id == "a1" and parsed.line == 2
    request = parsed.request
    assert request is not None
    assert (request.mode.value, request.resolution, request.quality.value) == ("t2v", "480p", "premium")
    assert request.campaign_id == "cmp_X" and request.priority is Priority.BATCH
    assert request.deadline == CREATED + timedelta(days=1) and request.deadline_s is None


def test_an_items_own_relative_deadline_counts_from_the_campaigns_creation() -> None:
    parsed = parse_line(line({"prompt": "boat", "deadline_s": 600, "priority": "interactive"}), 7, "c", SPEC, CREATED)
    assert parsed is not None and parsed.request is not None
    assert parsed.request.deadline == CREATED + timedelta(seconds=600)
    assert parsed.request.priority is Priority.INTERACTIVE


@pytest.mark.parametrize(("raw_id", "expected"), [(None, "5"), (42, "42"), ("sku-9:v2", "sku-9:v2")])
def test_the_item_id_is_given_or_the_line_number(raw_id: Any, expected: str) -> None:
    body: dict[str, Any] = {"prompt": "boat"}
    if raw_id is not None:
        body["item_id"] = raw_id
    parsed = parse_line(line(body), 5, "c", SPEC, CREATED)
    assert parsed is not None and parsed.item_id == expected and parsed.request is not None


@pytest.mark.parametrize(("raw", "item_id", "field", "message"), [
    (b"{not json", "3", "", "not JSON"),
    (line([1, 2]), "3", "", "must be a JSON object"),
    (line({"item_id": "has space", "prompt": "x"}), "3", "item_id", "must be 1-128"),
    (line({"item_id": True, "prompt": "x"}), "3", "item_id", "must be 1-128"),
    (line({"item_id": "b7", "prompt": "x", "campaign_id": "other"}), "b7", "campaign_id", "is set by the campaign"),
    (line({"item_id": "b8", "prompt": "x", "colour": "red"}), "b8", "colour", "unknown field"),
    (line({"item_id": "b9", "prompt": "x", "duration_s": 301}), "b9", "duration_s", "less than or equal to 300"),
    (line({"item_id": "b10", "prompt": "x", "mode": "i2v"}), "b10", "image", "is required for mode i2v"),
    (b"{" + b" " * MAX_LINE_BYTES + b"}", "3", "", "longer than"),
])
def test_an_invalid_line_is_recorded_with_item_id_line_field_and_message(raw: bytes, item_id: str, field: str,
                                                                         message: str) -> None:
    parsed = parse_line(raw, 3, "c", SPEC, CREATED)
    assert parsed is not None and parsed.request is None
    [error] = parsed.errors
    assert (error.item_id, error.line, error.field) == (item_id, 3, field)
    assert message in error.message


def test_every_bad_field_of_a_line_is_recorded() -> None:
    parsed = parse_line(line({"item_id": "m", "prompt": "", "fps": 1}), 4, "c", SPEC, CREATED)
    assert parsed is not None and sorted(e.field for e in parsed.errors) == ["fps", "prompt"]


def test_a_blank_line_is_nothing() -> None:
    assert parse_line(b"  \r", 9, "c", SPEC, CREATED) is None


def test_a_deadline_already_past_at_creation_is_invalid() -> None:
    spec = CampaignSpec(deadline=CREATED - timedelta(minutes=1))
    parsed = parse_line(line({"mode": "t2v", "prompt": "x"}), 2, "c", spec, CREATED)
    assert parsed is not None and [e.field for e in parsed.errors] == ["deadline"]


# --- create bodies, ids and keys ------------------------------------------------------------------------------------


def test_a_create_body_has_items_or_a_manifest_and_its_spec_keeps_only_what_was_set() -> None:
    body = CampaignCreate.model_validate({"name": "bf", "items": [{"prompt": "x"}], "budget_usd": "5"})
    assert body.spec().model_dump(exclude_unset=True) == {"name": "bf", "budget_usd": Decimal("5")}
    for bad in ({"name": "bf"}, {"name": "bf", "items": [{}], "manifest": "s3://b/campaigns/t/x.jsonl"},
                {"name": "bf", "items": [{}] * 1001}, {"name": "bad name", "items": [{}]},
                {"name": "bf", "manifest": "https://example.com/x.jsonl"}):
        with pytest.raises(ValidationError):
            CampaignCreate.model_validate(bad)


def test_ids_are_derived_so_the_same_names_are_the_same_records() -> None:
    assert campaign_id("acme", "bf") == campaign_id("acme", "bf") != campaign_id("beta", "bf")
    assert campaign_id("acme", "bf").startswith("cmp_") and len(campaign_id("acme", "bf")) == 30
    assert item_job_id("cmp_A", "1") == item_job_id("cmp_A", "1") != item_job_id("cmp_A", "2")
    assert item_job_id("cmp_A", "12") != item_job_id("cmp_A1", "2")  # no ambiguity across the separator


@pytest.mark.parametrize(("key", "expected"), [
    ("campaigns/acme/black-friday.jsonl", ("acme", "black-friday")),
    ("campaigns/acme/bf.v2.jsonl", ("acme", "bf.v2")),
    ("campaigns/spring.jsonl", None),
    ("campaigns/acme/sub/x.jsonl", None),
    ("campaigns/ACME/x.jsonl", None),
    ("uploads/acme/x.jsonl", None),
    ("campaigns/acme/x.json", None),
])
def test_manifest_keys_name_tenant_and_campaign(key: str, expected: tuple[str, str] | None) -> None:
    assert manifest_key_parts(key) == expected


# --- queue bodies ---------------------------------------------------------------------------------------------------


def test_s3_events_give_url_decoded_keys_and_the_test_event_gives_nothing() -> None:
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": "bkt"},
                                 "object": {"key": "campaigns%2Facme%2Fblack+friday.jsonl", "eTag": "abc"}}},
                         {"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
                          "s3": {"bucket": {"name": "bkt"}, "object": {"key": "campaigns/acme/x.jsonl"}}}]}
    assert parse_queue_body(json.dumps(event)) == [
        ManifestDrop(bucket="bkt", key="campaigns/acme/black friday.jsonl", etag="abc")]
    assert parse_queue_body(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "bkt"})) == []
    step = CampaignMessage(tenant="acme", campaign_id="cmp_X", step=3)
    assert parse_queue_body(step.model_dump_json()) == step
    with pytest.raises(ValueError):
        parse_queue_body(json.dumps({"hello": "world"}))


# --- streaming lines ------------------------------------------------------------------------------------------------


class RangeS3:
    """get_object with a byte Range over one object, as S3 answers it (416 past the end)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ranges: list[str] = []

    def get_object(self, Bucket: str, Key: str, Range: str) -> dict[str, Any]:
        self.ranges.append(Range)
        start = int(Range.removeprefix("bytes=").rstrip("-"))
        if start >= len(self.data):
            raise ClientError({"Error": {"Code": "InvalidRange", "Message": "not satisfiable"}}, "GetObject")
        body = self.data[start:]
        return {"Body": StreamingBody(io.BytesIO(body), len(body))}


def test_lines_come_with_exact_byte_offsets_and_resume_from_any_of_them() -> None:
    data = b'{"a": 1}\r\n\n{"b": 2}\n{"c": 3}'  # CRLF, a blank line, no newline at the end
    s3 = RangeS3(data)
    store = ManifestStore(s3, "bkt")
    lines = list(store.lines("k", 0))
    assert [raw for _, raw in lines] == [b'{"a": 1}\r', b"", b'{"b": 2}', b'{"c": 3}']
    assert [end for end, _ in lines] == [10, 11, 20, 28]
    assert [raw for _, raw in store.lines("k", 11)] == [b'{"b": 2}', b'{"c": 3}']
    assert list(store.lines("k", len(data))) == []  # resuming at the end is the end


def test_a_huge_line_is_cut_not_buffered_and_the_next_line_still_starts_in_the_right_place() -> None:
    data = b"x" * (5 * MAX_LINE_BYTES) + b"\n" + b'{"ok": true}\n'
    lines = list(ManifestStore(RangeS3(data), "bkt").lines("k", 0))
    assert [len(raw) for _, raw in lines] == [MAX_LINE_BYTES + 1, len(b'{"ok": true}')]
    assert lines[0][0] == 5 * MAX_LINE_BYTES + 1 and lines[1][0] == len(data)
