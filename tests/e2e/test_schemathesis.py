"""Property-based requests generated from our own OpenAPI document: no response may be a server error."""

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.e2e.conftest import KEYS

ADMIN_KEY = KEYS.split(",")[0].split(":")[1]


def test_no_server_errors_on_any_operation(stack) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.url}/v1/openapi.json")
    seen: dict[str, int] = {}

    @given(case=schema.as_strategy())
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case) -> None:
        response = case.call(base_url=stack.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        seen[f"{case.method} {case.path}"] = seen.get(f"{case.method} {case.path}", 0) + 1
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} " \
                                           f"{response.text[:300]}"

    check()
    assert len(seen) >= 6, seen  # every documented operation was exercised, not just one
