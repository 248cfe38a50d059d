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
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.policy.context import BudgetState, Exploration, RoutingContext, TargetState
from router.policy.engine import route
from router.policy.exploration import Limits, allowance
from router.policy.fallback import excluded_offers
from router.policy.learning import Learned

NOW = datetime(2026, 12, 4, 9, tzinfo=UTC)
OFFERS = load_catalog().offers
ASK = {"mode": "t2v", "prompt": "a paper boat", "resolution": "480p", "duration_s": 5, "quality": "standard",
       "deadline_s": 3 * 3600}
OPEN = Exploration(draw=0.01, jobs_left=5, usd_left=Decimal("5"), share=0.10, margin_s=600.0, z=3.0, min_runs=3)


def context(exploration: Exploration | None = OPEN, local_wait_s: float = 0.0, **fields: object) -> RoutingContext:
    targets = {kind: TargetState(name=kind.value) for kind in ProviderKind}
    targets[ProviderKind.LOCAL] = TargetState(name="agent-1", queue_wait_s=local_wait_s)
    return RoutingContext(targets=targets, configured=frozenset(ProviderKind), exploration=exploration,
                          **fields)  # type: ignore[arg-type]


def decide(ctx: RoutingContext, **body: object) -> tuple[VideoRequest, object]:
    request = VideoRequest.parse_at_edge({**ASK, **body}, NOW)
    return request, route(request, OFFERS, ctx, NOW)


def test_an_idle_gpu_with_no_runs_gets_the_request_with_the_cloud_kept_as_its_fallback() -> None:
    _, plain = decide(context(exploration=None))
    _, decision = decide(context())
    assert plain.chosen.provider is ProviderKind.REPLICATE and plain.chosen.explored is None
    chosen = decision.chosen
    assert chosen.provider is ProviderKind.LOCAL and chosen.explored and chosen.explore_until is not None
    assert decision.fallbacks[0] == plain.chosen.offer  # what it would have done is what it falls back on
    # It says why: the evidence, the optimism, the abandon point, the fallback, the draw.
    assert chosen.reason.startswith(f"exploring {chosen.offer}")
    for words in ("0 measured runs", "agent-1 is idle", "3 sd below", plain.chosen.offer, "drawn 0.010 < share 0.1"):
        assert words in chosen.explored
    # The fallback still makes the deadline from the abandon point, with the margin to spare.
    fallback_s = (plain.chosen.estimated_ready_at - NOW).total_seconds()
    assert chosen.explore_until + timedelta(seconds=fallback_s + 600) <= NOW + timedelta(seconds=ASK["deadline_s"])
    assert chosen.estimated_ready_at <= NOW + timedelta(seconds=ASK["deadline_s"])
    row = next(c for c in decision.candidates if c.offer == chosen.offer)
    assert row.feasible and not row.reasons


def test_explores_only_while_the_gpu_is_idle() -> None:
    _, busy = decide(context(local_wait_s=60.0))
    assert busy.chosen.explored is None and busy.chosen.provider is not ProviderKind.LOCAL


@pytest.mark.parametrize("allowed", [
    replace(OPEN, draw=0.10),  # not drawn: draw >= share
    replace(OPEN, jobs_left=0),  # today's exploring attempts used up
    replace(OPEN, usd_left=Decimal("0.01")),  # today's exploring spend can't hold the pessimistic p90
    None,  # off
])
def test_explores_only_within_the_caps(allowed: Exploration | None) -> None:
    _, decision = decide(context(exploration=allowed))
    _, plain = decide(context(exploration=None))
    assert decision == plain


def test_the_same_draw_decides_the_same() -> None:
    ctx = context(exploration=allowance(Limits(), random.Random("explore:job_1").random(), 0, Decimal(0)))
    assert decide(ctx)[1] == decide(ctx)[1]
    again = allowance(Limits(), random.Random("explore:job_1").random(), 0, Decimal(0))
    assert again == ctx.exploration
    assert allowance(Limits(share=0.0), 0.0, 0, Decimal(0)) is None


def test_an_offer_with_enough_evidence_is_not_explored() -> None:
    # Three runs that confirm the catalog: the GPU is slow, and it competes on what was measured.
    slow = {o.id: Learned(runs=3, log_sd=0.1) for o in OFFERS if o.provider is ProviderKind.LOCAL}
    _, decision = decide(context(learned=slow))
    assert decision.chosen.explored is None and decision.chosen.provider is not ProviderKind.LOCAL


def test_a_render_proved_slow_by_an_abandoned_try_is_not_hoped_for_again() -> None:
    proved = {o.id: Learned(time_floor=0.5) for o in OFFERS if o.provider is ProviderKind.LOCAL}
    _, decision = decide(context(learned=proved))
    assert decision.chosen.explored is None


@pytest.mark.parametrize("deadline_s", [900, 1200])
def test_never_when_the_fallback_could_not_make_the_deadline_after_the_abandon_point(deadline_s: int) -> None:
    # The cloud fallback needs ~75 s at p90 plus the 600 s margin: what is left is shorter than even the optimistic
    # render (~620 s), so the try would be stopped before it could finish.
    _, decision = decide(context(), deadline_s=deadline_s)
    assert decision.chosen is not None and decision.chosen.explored is None
    _, longer = decide(context(), deadline_s=1800)
    assert longer.chosen.explored is not None


def test_the_abandon_point_leaves_exactly_the_fallbacks_time_and_the_margin() -> None:
    _, plain = decide(context(exploration=None))
    fallback_s = (plain.chosen.estimated_ready_at - NOW).total_seconds()
    _, decision = decide(context())
    deadline = NOW + timedelta(seconds=ASK["deadline_s"])
    assert decision.chosen.explore_until == deadline - timedelta(seconds=fallback_s + 600)
    # Without a margin the window only grows.
    _, tight = decide(context(exploration=replace(OPEN, margin_s=0.0)))
    assert tight.chosen.explore_until > decision.chosen.explore_until


def test_never_without_a_deadline() -> None:
    request = VideoRequest.parse_at_edge({k: v for k, v in ASK.items() if k != "deadline_s"}, NOW)
    assert route(request, OFFERS, context(), NOW).chosen.explored is None


def test_money_is_judged_pessimistically_with_the_fallback_counted() -> None:
    _, decision = decide(context())
    chosen = decision.chosen
    # The catalog's p90 cost (5-7 GPU-hours of energy), not the optimistic one, is what is held and checked.
    _, catalog_row = decide(context(exploration=None))
    local = next(c for c in catalog_row.candidates if c.offer == chosen.offer)
    assert chosen.estimated_cost_p90_usd >= local.estimated_cost_p90_usd
    fallback = next(c for c in decision.candidates if c.offer == decision.fallbacks[0])
    assert fallback.estimated_cost_p90_usd < Decimal("0.10")
    # A cap (or a budget) that holds the fallback, and the optimistic try, but not the pessimistic try with the
    # fallback after it: no exploring.
    _, capped = decide(context(), max_cost_usd="0.30")
    assert capped.chosen is not None and capped.chosen.explored is None
    _, roomy = decide(context(), max_cost_usd=str(chosen.estimated_cost_p90_usd + fallback.estimated_cost_p90_usd))
    assert roomy.chosen.explored is not None
    budget = BudgetState(scope="tenant:acme", remaining_usd=Decimal("0.30"))
    _, tight = decide(context(budgets=(budget,)))
    assert tight.chosen is not None and tight.chosen.explored is None


def test_never_below_the_quality_floor() -> None:
    _, decision = decide(context(), quality="premium")
    offer = next(o for o in OFFERS if o.id == decision.chosen.offer)
    assert offer.quality >= 5


def test_cloud_offers_are_not_explored_by_default() -> None:
    _, decision = decide(context(local_wait_s=60.0))
    assert decision.chosen.explored is None
    everywhere = replace(OPEN, kinds=frozenset(ProviderKind))
    _, wider = decide(context(exploration=everywhere, local_wait_s=60.0))
    assert wider.chosen.explored is None or wider.chosen.provider is not ProviderKind.LOCAL


def test_an_abandoned_exploration_rules_the_offer_out_for_the_job() -> None:
    failures = [("local/wan21-14b", ProviderKind.LOCAL, "exploration_abandoned: not done by its abandon point")]
    assert excluded_offers(failures, OFFERS) == frozenset({"local/wan21-14b"})
