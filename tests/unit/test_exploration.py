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
from router.models.outcome import AttemptCode
from router.models.request import VideoRequest
from router.policy import localqueue
from router.policy.catalog import load_catalog
from router.policy.context import BudgetState, Exploration, RoutingContext, TargetState
from router.policy.engine import route
from router.policy.exploration import SPEND, Limits, allowance
from router.policy.fallback import excluded_offers
from router.policy.learning import Learned
from router.policy.localqueue import Work

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


def test_never_on_a_busy_gpu_that_does_not_say_what_it_holds() -> None:
    busy = decide(context(local_wait_s=60.0))
    assert chosen(busy).explored is None and chosen(busy).provider is not ProviderKind.LOCAL


def with_queue(*queue: Work) -> RoutingContext:
    ctx = context()
    local = TargetState(name="agent-1", queue=queue, queue_wait_s=localqueue.wait_s(queue, None, 1))
    return replace(ctx, targets={**ctx.targets, ProviderKind.LOCAL: local})


def test_a_busy_gpu_is_explored_when_the_try_pushes_no_queued_job_past_its_deadline() -> None:
    # A render due sooner runs for 10 minutes; one due in a day waits. Held to its abandon point after the first, the
    # try leaves the second hours to spare.
    running = Work(left_s=600, due=NOW + timedelta(hours=1), running=True)
    later = Work(left_s=3600, due=NOW + timedelta(hours=24))
    picked = chosen(decide(with_queue(running, later)))
    assert picked.provider is ProviderKind.LOCAL and picked.explored and picked.explore_until is not None
    assert "agent-1 holds 2 jobs" in picked.explored


def test_never_when_the_try_could_push_a_queued_job_past_its_deadline() -> None:
    # The job due just after the request has 4 minutes to spare: a try ahead of it, held to its abandon point,
    # would make it late. Given a day more, the same job leaves room for the try.
    running = Work(left_s=600, due=NOW + timedelta(hours=1), running=True)
    due = NOW + timedelta(seconds=DEADLINE_S + 60)
    tight = Work(left_s=DEADLINE_S + 60 - 600 - 240, due=due)
    assert chosen(decide(with_queue(running, tight))).explored is None
    roomy = replace(tight, due=due + timedelta(days=1))
    assert chosen(decide(with_queue(running, roomy))).explored is not None


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
    # Half an hour: the fallback's time and the margin leave less than the try could win in, so they decide it.
    plain = decide(context(exploration=None), deadline_s=1800)
    fallback_s = (chosen(plain).estimated_ready_at - NOW).total_seconds()
    decision = decide(context(), deadline_s=1800)
    deadline = NOW + timedelta(seconds=1800)
    assert chosen(decision).explore_until == deadline - timedelta(seconds=fallback_s + 600)
    # Without a margin the window only grows.
    tight = decide(context(exploration=replace(OPEN, margin_s=0.0)), deadline_s=1800)
    wider, narrower = chosen(tight).explore_until, chosen(decision).explore_until
    assert wider is not None and narrower is not None and wider > narrower


def test_a_try_is_stopped_once_it_has_cost_twice_its_fallback() -> None:
    # Three hours: the deadline would leave the try hours, but a render still running once it has billed twice what
    # the cloud charges has as good as lost; stopped there, it costs about the fallback's price, not the 5-7
    # GPU-hours it may really take (docs/decisions.md, 2026-12-04).
    plain = chosen(decide(context(exploration=None)))
    picked = chosen(decide(context()))
    offer = next(o for o in OFFERS if o.id == picked.offer)
    assert picked.explore_until is not None and picked.delivered is not None
    spec = picked.delivered
    priced = offer.price_for(spec.width, spec.height, spec.duration_s)
    assert priced is not None and priced[0] == "gpu_second"
    spend_s = float(SPEND * plain.estimated_cost_usd / priced[1])
    assert (picked.explore_until - NOW).total_seconds() == pytest.approx(spend_s)
    fallback_s = (plain.estimated_ready_at - NOW).total_seconds()
    assert spend_s < DEADLINE_S - fallback_s - 600


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
    failures = [("local/wan21-14b", ProviderKind.LOCAL, AttemptCode.EXPLORATION_ABANDONED)]
    assert excluded_offers(failures, OFFERS) == frozenset({"local/wan21-14b"})
