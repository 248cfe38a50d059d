"""Issue 19 over HTTP: past the failure limit, the local API Gateway refuses every key from that source IP with
API Gateway's own 403, a valid key's too, while another IP goes on as before.

A stack of its own with a limit of 3 (the shared e2e stack allows far more: its modules send bad keys on purpose).
Loopback is a /8, so a client bound to 127.0.0.2 is another source IP to the gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hvr.local.embedded import EmbeddedStack
from tests.e2e.conftest import KEYS

LIMIT = 3
FORBIDDEN = {"message": "Forbidden"}


@pytest.fixture(scope="module")
def small_limit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    # Time scale 1: the authorizer's results stay cached the template's 300 s, as in AWS, so what one IP was
    # refused would be served to another if the cache were keyed by the header alone.
    with EmbeddedStack(Path(tmp_path_factory.mktemp("auth-throttle")), time_scale=1.0, api_keys=KEYS,
                       with_agent=False, with_sandboxes=False, background=False,
                       auth_failure_limit=LIMIT) as stack:
        yield stack


def http(stack: EmbeddedStack, key: str | None, source: str = "127.0.0.1") -> httpx.Client:
    return httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {key}"} if key else {},
                        transport=httpx.HTTPTransport(local_address=source), timeout=30)


def test_a_guessing_ip_is_refused_even_its_valid_key_and_other_ips_are_not(small_limit: EmbeddedStack) -> None:
    for i in range(LIMIT):
        with http(small_limit, f"hvr_guess-{i}") as guess:
            refused = guess.get("/v1/jobs")
        assert refused.status_code == 403 and refused.json() == FORBIDDEN

    with http(small_limit, "acme-key") as valid_here:
        refused = valid_here.get("/v1/jobs")
        # The gateway's 403 for a wrong key, word for word: nothing tells the guesser it has been throttled.
        assert refused.status_code == 403 and refused.json() == FORBIDDEN
        assert refused.headers["content-type"] == "application/json"
        assert valid_here.get("/v1/health").status_code == 200  # routes without the authorizer are untouched
    with http(small_limit, None) as anonymous:
        assert anonymous.get("/v1/jobs").status_code == 401  # the gateway's own answer, before any authorizer

    with http(small_limit, "acme-key", source="127.0.0.2") as valid_elsewhere:
        listed = valid_elsewhere.get("/v1/jobs")
        assert listed.status_code == 200, listed.text
        assert listed.json()["items"] == []
    with http(small_limit, "beta-key", source="127.0.0.2") as other_key_elsewhere:
        assert other_key_elsewhere.get("/v1/jobs").status_code == 200

