"""Issue 19: failed API keys are throttled per source IP by the authorizer itself (HTTP APIs have no usage plans).

The authorizer's handler against the keys table on moto (provisioned from infra/template.yaml), its clock moved
instead of slept through, with the deployment's defaults (20 failures per 60 s) unless a test sets its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from functions.authorizer import handler
from hvr.local.moto_server import LOCAL_ENV, REGION
from hvr.local.provision import load_template, provision
from router.store.auth_failures import DEFAULT_MAX_FAILURES, DEFAULT_WINDOW_S, EXPIRY_MARGIN_S, AuthFailures
from router.store.keys import KeysRepository, Principal

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)  # a window's first second (a whole minute)
KEY = "hvr_valid-key-for-acme"
ALLOWED = {"isAuthorized": True, "context": {"tenant": "acme", "role": "member"}}
REFUSED = {"isAuthorized": False}


@pytest.fixture
def ddb(moto_url: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@pytest.fixture
def table(ddb: Any, moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh keys table holding one valid key, and the authorizer's environment pointing at it."""
    template = load_template()
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump({"Resources": {"KeysTable": template["Resources"]["KeysTable"]}}))
    name = provision({"dynamodb": ddb}, stack_name=f"t{uuid.uuid4().hex[:10]}", path=path).table_names["KeysTable"]
    KeysRepository(ddb, name).put(KEY, Principal(tenant="acme", role="member"), NOW)
    for variable, value in {**LOCAL_ENV, "AWS_ENDPOINT_URL": moto_url, "HVR_KEYS_TABLE": name}.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("HVR_AUTH_FAILURE_LIMIT", raising=False)
    monkeypatch.delenv("HVR_AUTH_FAILURE_WINDOW_S", raising=False)
    handler._keys.cache_clear()
    yield name
    handler._keys.cache_clear()


class Clock:
    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(handler, "clock", clock)
    return clock


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every key the authorizer looked up."""
    seen: list[str] = []
    original = KeysRepository.lookup

    def spy(self: KeysRepository, key: str) -> Principal | None:
        seen.append(key)
        return original(self, key)

    monkeypatch.setattr(KeysRepository, "lookup", spy)
    return seen


def authorize(key: str, ip: str = "203.0.113.7", scheme: str = "Bearer") -> dict[str, Any]:
    event = {"version": "2.0", "type": "REQUEST", "headers": {"authorization": f"{scheme} {key}"},
             "identitySource": [f"{scheme} {key}", ip], "requestContext": {"http": {"sourceIp": ip}}}
    result: dict[str, Any] = handler.lambda_handler(event, None)
    return result


def fail(times: int, ip: str = "203.0.113.7") -> None:
    for i in range(times):
        assert authorize(f"hvr_guess-{uuid.uuid4().hex}-{i}", ip) == REFUSED


def test_one_failure_short_of_the_limit_a_valid_key_is_still_allowed(table: str, clock: Clock) -> None:
    fail(DEFAULT_MAX_FAILURES - 1)
    assert authorize(KEY) == ALLOWED
    assert authorize(KEY) == ALLOWED  # a success neither counts nor resets the count
    fail(1)
    assert authorize(KEY) == REFUSED


def test_at_the_limit_even_a_valid_key_is_refused_unread_and_only_from_that_ip(
        table: str, clock: Clock, lookups: list[str]) -> None:
    fail(DEFAULT_MAX_FAILURES)
    looked_up = len(lookups)
    assert authorize(KEY) == REFUSED
    assert authorize("hvr_one-more-guess") == REFUSED
    assert len(lookups) == looked_up  # refused without reading the key: no answer tells which key is valid
    assert authorize(KEY, ip="198.51.100.20") == ALLOWED
    assert authorize(KEY, ip="2001:db8::1") == ALLOWED


def test_refusals_of_a_throttled_ip_are_not_counted(table: str, ddb: Any, clock: Clock) -> None:
    fail(DEFAULT_MAX_FAILURES)
    for _ in range(5):
        assert authorize("hvr_still-guessing") == REFUSED
    assert AuthFailures(ddb, table).count("203.0.113.7", clock.at) == DEFAULT_MAX_FAILURES


def test_the_throttle_lifts_when_its_window_ends(table: str, clock: Clock) -> None:
    clock.at = NOW + timedelta(seconds=30)  # failures late in a window count in that window only
    fail(DEFAULT_MAX_FAILURES)
    clock.at = NOW + timedelta(seconds=DEFAULT_WINDOW_S - 1)
    assert authorize(KEY) == REFUSED
    clock.at = NOW + timedelta(seconds=DEFAULT_WINDOW_S)
    assert authorize(KEY) == ALLOWED
    fail(DEFAULT_MAX_FAILURES - 1)
    assert authorize(KEY) == ALLOWED  # the new window counts from zero


def test_malformed_authorization_counts_as_a_failure(table: str, clock: Clock) -> None:
    for i in range(DEFAULT_MAX_FAILURES):
        assert authorize(f"guess-{i}", scheme="Basic") == REFUSED
    assert authorize(KEY) == REFUSED


def test_counters_expire_by_ttl_and_stay_apart_from_the_keys(table: str, ddb: Any, clock: Clock) -> None:
    fail(3)
    ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at" and ttl["TimeToLiveStatus"] == "ENABLED"
    window = int(NOW.timestamp())
    item = ddb.get_item(TableName=table, Key={"pk": {"S": f"F#203.0.113.7#{window}"}})["Item"]
    assert item["failures"] == {"N": "3"}
    assert int(item["expires_at"]["N"]) == window + DEFAULT_WINDOW_S + EXPIRY_MARGIN_S
    keys = [i["pk"]["S"] for i in ddb.scan(TableName=table)["Items"] if "expires_at" not in i]
    assert keys and all(pk.startswith("K#") for pk in keys)  # the keys themselves never expire


def test_the_limit_and_window_are_read_from_the_environment_at_each_call(
        table: str, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVR_AUTH_FAILURE_LIMIT", "3")
    monkeypatch.setenv("HVR_AUTH_FAILURE_WINDOW_S", "10")
    fail(2)
    assert authorize(KEY) == ALLOWED
    fail(1)
    assert authorize(KEY) == REFUSED
    clock.at = NOW + timedelta(seconds=10)
    assert authorize(KEY) == ALLOWED


def test_concurrent_failures_are_each_counted(table: str, ddb: Any) -> None:
    failures = AuthFailures(ddb, table)
    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(lambda _: failures.record("192.0.2.1", NOW), range(24)))
    assert sorted(counts) == list(range(1, 25))
    assert failures.throttled("192.0.2.1", NOW) and not failures.throttled("192.0.2.2", NOW)
