"""Bounded exploration (router.policy.exploration): when the engine tries an offer with little evidence, and when not.

The case throughout: a 480p text-to-video request with hours to spare. At the catalog's figures the studio's GPU
takes 5-7 hours for it (as slow as the catalog's minutes per frame say), so without exploring it goes to the cloud.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from router.models.common import ProviderKind
from router.models.decision import Chosen, Decision
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.policy.context import BudgetState, Exploration, RoutingContext, TargetState
from router.policy.engine import route
from router.policy.exploration import Limits, allowance
from router.policy.fallback import excluded_offers
from router.policy.learning import Learned

NOW = datetime(2026, 12, 4, 9, tzinfo=UTC)
OFFERS = load_catalog().offers
DEADLINE_S = 3 * 3600
ASK = {"mode": "t2v", "prompt": "a paper boat", "resolution": "480p", "duration_s": 5, "quality": "standard",
       "deadline_s": DEADLINE_S}
OPEN = Exploration(draw=0.01, jobs_left=5, usd_left=Decimal("5"), share=0.10, margin_s=600.0, z=3.0, min_runs=3)


def context(exploration: Exploration | None = OPEN, local_wait_s: float = 0.0, **fields: object) -> RoutingContext:
    targets = {kind: TargetState(name=kind.value) for kind in ProviderKind}
    targets[ProviderKind.LOCAL] = TargetState(name="agent-1", queue_wait_s=local_wait_s)
    return RoutingContext(targets=targets, configured=frozenset(ProviderKind), exploration=exploration,
                          **fields)  # type: ignore[arg-type]


def decide(ctx: RoutingContext, **body: object) -> Decision:
    return route(VideoRequest.parse_at_edge({**ASK, **body}, NOW), OFFERS, ctx, NOW)


def chosen(decision: Decision) -> Chosen:
    assert decision.chosen is not None, decision.reasons
    return decision.chosen


def test_an_idle_gpu_with_no_runs_gets_the_request_with_the_cloud_kept_as_its_fallback() -> None:
    plain = decide(context(exploration=None))
    decision = decide(context())
    assert chosen(plain).provider is ProviderKind.REPLICATE and chosen(plain).explored is None
    picked = chosen(decision)
    assert picked.provider is ProviderKind.LOCAL and picked.explored and picked.explore_until is not None
    assert decision.fallbacks[0] == chosen(plain).offer  # what it would have done is what it falls back on
    # It says why: the evidence, the optimism, the abandon point, the fallback, the draw.
    assert picked.reason.startswith(f"exploring {picked.offer}")
    for words in ("0 measured runs", "agent-1 is idle", "3 sd below", chosen(plain).offer, "drawn 0.010 < share 0.1"):
        assert words in picked.explored
    # The fallback still makes the deadline from the abandon point, with the margin to spare.
    fallback_s = (chosen(plain).estimated_ready_at - NOW).total_seconds()
    assert picked.explore_until + timedelta(seconds=fallback_s + 600) <= NOW + timedelta(seconds=DEADLINE_S)
    assert picked.estimated_ready_at <= NOW + timedelta(seconds=DEADLINE_S)
    row = next(c for c in decision.candidates if c.offer == picked.offer)
    assert row.feasible and not row.reasons


def test_explores_only_while_the_gpu_is_idle() -> None:
    busy = decide(context(local_wait_s=60.0))
    assert chosen(busy).explored is None and chosen(busy).provider is not ProviderKind.LOCAL


@pytest.mark.parametrize("allowed", [
    replace(OPEN, draw=0.10),  # not drawn: draw >= share
    replace(OPEN, jobs_left=0),  # today's exploring attempts used up
    replace(OPEN, usd_left=Decimal("0.01")),  # today's exploring spend can't hold the pessimistic p90
    None,  # off
])
def test_explores_only_within_the_caps(allowed: Exploration | None) -> None:
    decision = decide(context(exploration=allowed))
    plain = decide(context(exploration=None))
    assert decision == plain


def test_the_same_draw_decides_the_same() -> None:
    ctx = context(exploration=allowance(Limits(), random.Random("explore:job_1").random(), 0, Decimal(0)))
    assert decide(ctx) == decide(ctx)
    again = allowance(Limits(), random.Random("explore:job_1").random(), 0, Decimal(0))
    assert again == ctx.exploration
    assert allowance(Limits(share=0.0), 0.0, 0, Decimal(0)) is None


def test_an_offer_with_enough_evidence_is_not_explored() -> None:
    # Three runs that confirm the catalog: the GPU is slow, and it competes on what was measured.
    slow = {o.id: Learned(runs=3, log_sd=0.1) for o in OFFERS if o.provider is ProviderKind.LOCAL}
    decision = decide(context(learned=slow))
    assert chosen(decision).explored is None and chosen(decision).provider is not ProviderKind.LOCAL


def test_a_render_proved_slow_by_an_abandoned_try_is_not_hoped_for_again() -> None:
    proved = {o.id: Learned(time_floor=0.5) for o in OFFERS if o.provider is ProviderKind.LOCAL}
    decision = decide(context(learned=proved))
    assert chosen(decision).explored is None


@pytest.mark.parametrize("deadline_s", [900, 1200])
def test_never_when_the_fallback_could_not_make_the_deadline_after_the_abandon_point(deadline_s: int) -> None:
    # The cloud fallback needs ~75 s at p90 plus the 600 s margin: what is left is shorter than even the optimistic
    # render (~620 s), so the try would be stopped before it could finish.
    decision = decide(context(), deadline_s=deadline_s)
    assert chosen(decision).explored is None
    longer = decide(context(), deadline_s=1800)
    assert chosen(longer).explored is not None


def test_the_abandon_point_leaves_exactly_the_fallbacks_time_and_the_margin() -> None:
    plain = decide(context(exploration=None))
    fallback_s = (chosen(plain).estimated_ready_at - NOW).total_seconds()
    decision = decide(context())
    deadline = NOW + timedelta(seconds=DEADLINE_S)
    assert chosen(decision).explore_until == deadline - timedelta(seconds=fallback_s + 600)
    # Without a margin the window only grows.
    tight = decide(context(exploration=replace(OPEN, margin_s=0.0)))
    wider, narrower = chosen(tight).explore_until, chosen(decision).explore_until
    assert wider is not None and narrower is not None and wider > narrower


def test_never_without_a_deadline() -> None:
    request = VideoRequest.parse_at_edge({k: v for k, v in ASK.items() if k != "deadline_s"}, NOW)
    assert chosen(route(request, OFFERS, context(), NOW)).explored is None


def test_money_is_judged_pessimistically_with_the_fallback_counted() -> None:
    decision = decide(context())
    picked = chosen(decision)
    # The catalog's p90 cost (5-7 GPU-hours of energy), not the optimistic one, is what is held and checked.
    catalog_row = decide(context(exploration=None))
    local = next(c.estimated_cost_p90_usd for c in catalog_row.candidates if c.offer == picked.offer)
    assert local is not None and picked.estimated_cost_p90_usd >= local
    fallback = next(c.estimated_cost_p90_usd for c in decision.candidates if c.offer == decision.fallbacks[0])
    assert fallback is not None and fallback < Decimal("0.10")
    # A cap (or a budget) that holds the fallback, and the optimistic try, but not the pessimistic try with the
    # fallback after it: no exploring.
    capped = decide(context(), max_cost_usd="0.30")
    assert chosen(capped).explored is None
    roomy = decide(context(), max_cost_usd=str(picked.estimated_cost_p90_usd + fallback))
    assert chosen(roomy).explored is not None
    budget = BudgetState(scope="tenant:acme", remaining_usd=Decimal("0.30"))
    tight = decide(context(budgets=(budget,)))
    assert chosen(tight).explored is None


def test_never_below_the_quality_floor() -> None:
    decision = decide(context(), quality="premium")
    offer = next(o for o in OFFERS if o.id == chosen(decision).offer)
    assert offer.quality >= 5


def test_cloud_offers_are_not_explored_by_default() -> None:
    decision = decide(context(local_wait_s=60.0))
    assert chosen(decision).explored is None
    everywhere = replace(OPEN, kinds=frozenset(ProviderKind))
    wider = decide(context(exploration=everywhere, local_wait_s=60.0))
    assert chosen(wider).explored is None or chosen(wider).provider is not ProviderKind.LOCAL


def test_an_abandoned_exploration_rules_the_offer_out_for_the_job() -> None:
    failures = [("local/wan21-14b", ProviderKind.LOCAL, "exploration_abandoned: not done by its abandon point")]
    assert excluded_offers(failures, OFFERS) == frozenset({"local/wan21-14b"})
