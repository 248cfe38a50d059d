"""Routing decision speed (ARCHITECTURE §11: p99 < 1 ms per decision on one core). `make bench` runs it."""

from datetime import UTC, datetime

import pytest

from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.policy.context import RoutingContext
from router.policy.engine import route

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.mark.slow
def test_route_decision(benchmark) -> None:
    offers = load_catalog().offers
    request = VideoRequest.parse_at_edge(
        {"mode": "t2v", "prompt": "x", "resolution": "720p", "duration_s": 1, "quality": "premium",
         "deadline_s": 7 * 86400}, NOW)
    decision = benchmark(route, request, offers, RoutingContext(), NOW)
    assert decision.chosen is not None
    stats = benchmark.stats.stats
    print(f"\n{len(offers)} offers: mean {stats.mean * 1e6:.0f} us, max {stats.max * 1e6:.0f} us, "
          f"{1 / stats.mean:.0f} decisions/s")
