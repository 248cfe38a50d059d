"""Placement across GPU boxes (policy.engine): a local offer runs on the box that can hold it and finishes it
cheapest, then soonest; settings name the fleet."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from router.models.common import ProviderKind
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.policy.context import RoutingContext, TargetState
from router.policy.engine import route
from router.providers.agent import AgentProvider
from router.providers.fleet import FleetProvider
from router.providers.registry import build_providers
from router.settings import Settings
from tests.twins import twin_settings

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
OFFERS = [o for o in load_catalog().offers if o.provider is ProviderKind.LOCAL]


def decide(*boxes: TargetState, **fields: object):
    context = RoutingContext(targets={ProviderKind.LOCAL: TargetState(name="local")},
                             boxes={ProviderKind.LOCAL: boxes}, configured=frozenset({ProviderKind.LOCAL}))
    ask = {"mode": "t2v", "prompt": "a kite", "duration_s": 2, "resolution": "480p", "model": "local/wan21-1.3b",
           **fields}
    return route(VideoRequest.parse_at_edge(ask, NOW), OFFERS, context, NOW)


def test_the_idle_box_gets_the_job_over_one_with_a_queue() -> None:
    busy = TargetState(name="5090", queue_wait_s=3 * 3600)
    idle = TargetState(name="4090")
    assert decide(busy, idle).chosen.target == "4090"  # type: ignore[union-attr]


def test_a_box_without_the_memory_is_passed_over_even_when_idle() -> None:
    small = TargetState(name="3080", vram_mb=10240)
    queued = TargetState(name="3090", vram_mb=24576, queue_wait_s=600)
    chosen = decide(small, queued).chosen
    assert chosen is not None and chosen.target == "3090"


def test_boxes_that_tie_go_to_the_first_name() -> None:
    assert decide(TargetState(name="b"), TargetState(name="a")).chosen.target == "a"  # type: ignore[union-attr]


def test_the_fleet_comes_from_settings_and_each_box_is_an_agent_of_its_own() -> None:
    settings = twin_settings(HVR_AGENTS="5090=http://127.0.0.1:9001, 3090=http://127.0.0.1:9002",
                             HVR_AGENT_SECRET="s3cret")
    assert settings.fleet() == {"5090": "http://127.0.0.1:9001", "3090": "http://127.0.0.1:9002"}
    fleet = build_providers(settings)[ProviderKind.LOCAL]
    assert isinstance(fleet, FleetProvider) and fleet.box_names == ("5090", "3090")
    single = build_providers(twin_settings(HVR_AGENT_URL="http://127.0.0.1:9001", HVR_AGENT_SECRET="s3cret"))
    assert isinstance(single[ProviderKind.LOCAL], AgentProvider)


def test_a_fleet_entry_that_is_not_name_equals_url_is_refused_naming_it() -> None:
    settings: Settings = twin_settings(HVR_AGENTS="5090=http://127.0.0.1:9001,3090")
    with pytest.raises(ValueError, match="HVR_AGENTS: '3090' is not name=url"):
        settings.fleet()
