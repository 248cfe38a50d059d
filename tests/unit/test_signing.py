"""router.signing: what the agent accepts and refuses (docs/architecture.md, "Security between router and agent")."""

from __future__ import annotations

from typing import Any

import pytest

from router.signing import (
    MAX_SKEW_S,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    sign,
    verify,
)

NOW = 1_760_000_000.0
SECRET = "s3cret-current"
OLD_SECRET = "s3cret-previous"
BODY = b'{"attempt_id": "att_1"}'
PATH = "/v1/jobs?dry=1"


class NonceSet:
    """The store's contract in memory: record, and say whether the nonce was new."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, nonce: str, timestamp: int) -> bool:
        fresh = nonce not in self.seen
        self.seen.add(nonce)
        return fresh


def check(
    headers: dict[str, str],
    *,
    secrets: tuple[str, ...] = (SECRET,),
    method: str = "POST",
    path: str = PATH,
    body: bytes = BODY,
    now: float = NOW,
    nonces: NonceSet | None = None,
) -> None:
    verify(secrets, method, path, body, headers, now=now, nonce_is_fresh=nonces or NonceSet())


def test_roundtrip_sets_the_three_headers_and_verifies() -> None:
    headers = sign(SECRET, "POST", PATH, BODY, now=NOW)
    assert set(headers) == {TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER}
    assert headers[SIGNATURE_HEADER].startswith("v1=")
    check(headers)


def test_header_names_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in sign(SECRET, "POST", PATH, BODY, now=NOW).items()}
    check(headers)


def test_method_is_case_insensitive() -> None:
    check(sign(SECRET, "post", PATH, BODY, now=NOW), method="POST")


@pytest.mark.parametrize(
    "tampered",
    [
        {"body": b'{"attempt_id": "att_2"}'},
        {"body": b""},
        {"path": "/v1/jobs?dry=0"},
        {"path": "/v1/jobs"},
        {"method": "PUT"},
    ],
)
def test_tampering_is_refused(tampered: dict[str, Any]) -> None:
    headers = sign(SECRET, "POST", PATH, BODY, now=NOW)
    with pytest.raises(SignatureError, match="signature mismatch"):
        check(headers, **tampered)


def test_tampered_timestamp_or_nonce_is_refused() -> None:
    headers = sign(SECRET, "POST", PATH, BODY, now=NOW)
    for name, value in ((TIMESTAMP_HEADER, str(int(NOW) + 1)), (NONCE_HEADER, "other-nonce")):
        with pytest.raises(SignatureError, match="signature mismatch"):
            check({**headers, name: value})


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(SignatureError, match="signature mismatch"):
        check(sign("not-the-secret", "POST", PATH, BODY, now=NOW))


@pytest.mark.parametrize("offset", [MAX_SKEW_S + 1, -(MAX_SKEW_S + 1), 10 * MAX_SKEW_S])
def test_skew_beyond_the_window_is_refused(offset: int) -> None:
    headers = sign(SECRET, "POST", PATH, BODY, now=NOW + offset)
    with pytest.raises(SignatureError, match="skew"):
        check(headers)


@pytest.mark.parametrize("offset", [MAX_SKEW_S, -MAX_SKEW_S, 0])
def test_skew_within_the_window_is_accepted(offset: int) -> None:
    check(sign(SECRET, "POST", PATH, BODY, now=NOW + offset))


def test_replayed_nonce_is_refused() -> None:
    nonces = NonceSet()
    headers = sign(SECRET, "POST", PATH, BODY, now=NOW)
    check(headers, nonces=nonces)
    with pytest.raises(SignatureError, match="replayed"):
        check(headers, nonces=nonces)


def test_forged_request_does_not_consume_a_nonce() -> None:
    nonces = NonceSet()
    forged = sign("not-the-secret", "POST", PATH, BODY, now=NOW, nonce="n-1")
    with pytest.raises(SignatureError):
        check(forged, nonces=nonces)
    assert nonces.seen == set()
    check(sign(SECRET, "POST", PATH, BODY, now=NOW, nonce="n-1"), nonces=nonces)


def test_rotation_accepts_every_listed_secret() -> None:
    secrets = (SECRET, OLD_SECRET)
    check(sign(SECRET, "POST", PATH, BODY, now=NOW), secrets=secrets)
    check(sign(OLD_SECRET, "POST", PATH, BODY, now=NOW), secrets=secrets)
    with pytest.raises(SignatureError):
        check(sign(OLD_SECRET, "POST", PATH, BODY, now=NOW), secrets=(SECRET,))


def test_empty_secrets_never_verify() -> None:
    with pytest.raises(SignatureError):
        check(sign("", "POST", PATH, BODY, now=NOW), secrets=("",))


@pytest.mark.parametrize("missing", [TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER])
def test_missing_header_is_refused(missing: str) -> None:
    headers = sign(SECRET, "POST", PATH, BODY, now=NOW)
    del headers[missing]
    with pytest.raises(SignatureError, match="missing"):
        check(headers)


def test_malformed_headers_are_refused() -> None:
    headers = sign(SECRET, "POST", PATH, BODY, now=NOW)
    with pytest.raises(SignatureError, match="malformed timestamp"):
        check({**headers, TIMESTAMP_HEADER: "yesterday"})
    with pytest.raises(SignatureError, match="scheme"):
        check({**headers, SIGNATURE_HEADER: headers[SIGNATURE_HEADER].replace("v1=", "v0=")})
    with pytest.raises(SignatureError, match="scheme"):
        check({**headers, SIGNATURE_HEADER: "v1="})


def test_fresh_nonces_differ() -> None:
    first = sign(SECRET, "GET", "/v1/jobs/a", now=NOW)
    second = sign(SECRET, "GET", "/v1/jobs/a", now=NOW)
    assert first[NONCE_HEADER] != second[NONCE_HEADER]
