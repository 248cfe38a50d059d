"""The hardware fit as data: a box that reports its memory gets only the local offers it can hold, offloading
included, and every other candidate says what it would need (`vram: …`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from router.models.common import ProviderKind
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.policy.context import RoutingContext, TargetState
from router.policy.engine import route

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
OFFERS = [o for o in load_catalog().offers if o.provider is ProviderKind.LOCAL]
GB = 1024


def on_box(vram_gb: int | None, ram_gb: int | None = 64, **fields: object) -> dict[str, list[str]]:
    """Each local offer's reasons for a request on a box with this much VRAM and RAM (no reasons: feasible)."""
    box = TargetState(name="agent-1", vram_mb=None if vram_gb is None else vram_gb * GB,
                      ram_mb=None if ram_gb is None else ram_gb * GB)
    context = RoutingContext(targets={ProviderKind.LOCAL: box}, configured=frozenset({ProviderKind.LOCAL}))
    request = VideoRequest.parse_at_edge({"mode": "t2v", "prompt": "a kite", "duration_s": 2, "priority": "batch",
                                          "quality": "draft", **fields}, NOW)
    decision = route(request, OFFERS, context, NOW)
    return {c.offer: [str(r) for r in c.reasons] for c in decision.candidates}


def vram(reasons: list[str]) -> list[str]:
    return [r for r in reasons if r.startswith("vram:")]


def test_a_10_gb_card_runs_animatediff_but_not_wan_1_3b_and_says_what_wan_needs() -> None:
    reasons = on_box(10, resolution="480p")
    assert vram(reasons["local/wan21-1.3b"]) == ["vram: 10 GB card, needs 12 GB for wan21-1.3b 480p"]
    square = on_box(10, resolution="512x512", aspect_ratio="1:1")
    assert not vram(square["local/animatediff-sd15"])


def test_the_studios_24_gb_card_runs_wan_2_2_offloaded_if_the_box_has_the_ram_for_it() -> None:
    assert not vram(on_box(24, ram_gb=64, resolution="720p")["local/wan22-14b"])
    assert vram(on_box(24, ram_gb=32, resolution="720p")["local/wan22-14b"]) == [
        "vram: 24 GB card, needs 32 GB for wan22-14b 720p (24 GB offloading to 64 GB of RAM; the box has 32 GB)"]
    assert vram(on_box(16, resolution="720p")["local/wan22-14b"]) == [
        "vram: 16 GB card, needs 32 GB for wan22-14b 720p (24 GB offloading to 64 GB of RAM)"]
    assert not vram(on_box(32, ram_gb=16, resolution="720p")["local/wan22-14b"])  # all of it in VRAM


@pytest.mark.parametrize("vram_gb", [None, 4])
def test_a_box_that_reports_no_memory_is_not_judged_by_it(vram_gb: int | None) -> None:
    reasons = on_box(vram_gb, ram_gb=None, resolution="480p")
    assert bool(vram(reasons["local/wan21-14b"])) is (vram_gb is not None)


def test_every_local_offer_states_its_hardware_fit_and_the_minimum_never_exceeds_the_recommendation() -> None:
    for offer in OFFERS:
        assert offer.vram is not None, offer.id
        for tier in offer.vram.tiers.values():
            assert (tier.offload_min_mb or tier.min_mb) <= offer.vram.recommended_mb, offer.id
            assert tier.offload_min_mb is None or tier.offload_min_mb < tier.min_mb, offer.id


def test_a_box_that_lists_what_it_can_run_gets_only_those_offers_and_modes() -> None:
    box = TargetState(name="agent-3090", models={"wan21-1.3b": frozenset({"t2v"})})
    context = RoutingContext(targets={ProviderKind.LOCAL: box}, configured=frozenset({ProviderKind.LOCAL}))
    ask = {"prompt": "a kite", "duration_s": 2, "priority": "batch", "quality": "draft", "resolution": "480p"}

    def reasons(**fields: object) -> dict[str, list[str]]:
        decision = route(VideoRequest.parse_at_edge({**ask, **fields}, NOW), OFFERS, context, NOW)
        return {c.offer: [r for r in map(str, c.reasons) if r.startswith("not_installed")] for c in decision.candidates}

    t2v = reasons(mode="t2v")
    assert not t2v["local/wan21-1.3b"]
    assert t2v["local/wan21-14b"] == [
        "not_installed: agent-3090 can't run wan21-14b t2v (its files are missing, or its card is too small)"]
    # extend continues in i2v, which this box can't run with the 1.3B model.
    assert reasons(mode="extend", video="s3://b/uploads/t/v.mp4")["local/wan21-1.3b"] == [
        "not_installed: agent-3090 can't run wan21-1.3b i2v (its files are missing, or its card is too small)"]
