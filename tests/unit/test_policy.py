"""The studio's decision matrix and the engine's invariants, over the full default catalog."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.models.budget import SpendMode
from router.models.common import Circuit, ProviderKind
from router.models.decision import Chosen, Decision
from router.models.request import VideoRequest
from router.policy import localqueue
from router.policy.catalog import load_catalog
from router.policy.context import BudgetState, Exploration, RoutingContext, TargetState
from router.policy.engine import route
from router.policy.learning import Learned
from router.policy.localqueue import Work

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CATALOG = load_catalog()
OFFERS = CATALOG.offers
ALL = frozenset(ProviderKind)


def everywhere(**local: object) -> RoutingContext:
    """Every provider configured and up; the local agent's state can be overridden."""
    targets = {kind: TargetState(name=kind.value) for kind in ProviderKind}
    targets[ProviderKind.LOCAL] = TargetState(name="agent-1", **local)  # type: ignore[arg-type]
    return RoutingContext(targets=targets, configured=ALL)


def request(**fields: object) -> VideoRequest:
    body = {"mode": "t2v", "prompt": "a red balloon", **fields}
    for name, ref in (("image", "s3://b/uploads/t/i.png"), ("audio", "s3://b/uploads/t/a.wav"),
                      ("mask", "s3://b/uploads/t/m.png")):
        needed = {"i2v": {"image"}, "camera": {"image"}, "s2v": {"image", "audio"}, "inpaint": {"image", "mask"}}
        if name in needed.get(str(body["mode"]), set()):
            body.setdefault(name, ref)
    return VideoRequest.parse_at_edge(body, NOW)


def offer(offer_id: str):
    found = CATALOG.get(offer_id)
    assert found is not None, offer_id
    return found


def test_draft_512_with_a_loose_deadline_goes_to_the_cheapest_feasible_offer() -> None:
    decision = route(request(resolution="512x512", aspect_ratio="1:1", duration_s=2, quality="draft",
                             deadline_s=86400, priority="batch"), OFFERS, everywhere(), NOW)
    feasible = [c for c in decision.candidates if c.feasible]
    assert decision.chosen is not None
    assert decision.chosen.estimated_cost_usd == min(c.estimated_cost_usd for c in feasible)


def test_lipsync_goes_to_a_speech_to_video_offer_never_animatediff_or_veo_2() -> None:
    decision = route(request(mode="s2v", resolution="720p", duration_s=5, deadline_s=86400), OFFERS,
                     everywhere(), NOW)
    assert decision.chosen is not None
    assert "s2v" in [m.value for m in offer(decision.chosen.offer).modes]
    for candidate in decision.candidates:
        if candidate.offer in ("local/animatediff-sd15", "veo/veo-2.0"):
            assert not candidate.feasible


def test_1080p_only_goes_to_offers_that_render_1080p() -> None:
    decision = route(request(resolution="1080p", duration_s=5, quality="premium", deadline_s=7 * 86400), OFFERS,
                     everywhere(), NOW)
    chosen = decision.chosen
    assert chosen is not None and min(chosen.delivered.width, chosen.delivered.height) == 1080
    for candidate in decision.candidates:
        if candidate.feasible:
            spec = candidate.delivered
            assert spec is not None and min(spec.width, spec.height) == 1080


def test_image_to_video_never_goes_to_animatediff() -> None:
    decision = route(request(mode="i2v", resolution="720p", duration_s=5, deadline_s=86400), OFFERS,
                     everywhere(), NOW)
    animatediff = next(c for c in decision.candidates if c.offer == "local/animatediff-sd15")
    assert not animatediff.feasible and any(r.code == "mode" for r in animatediff.reasons)
    assert decision.chosen is not None and decision.chosen.offer != "local/animatediff-sd15"


def test_highest_quality_goes_to_a_quality_5_offer() -> None:
    decision = route(request(resolution="720p", duration_s=5, quality="premium", deadline_s=86400), OFFERS,
                     everywhere(), NOW)
    assert decision.chosen is not None and offer(decision.chosen.offer).quality == 5


def test_a_cap_too_small_for_the_resolution_is_rejected_with_reasons() -> None:
    decision = route(request(resolution="1080p", duration_s=5, quality="premium", max_cost_usd="0.05",
                             deadline_s=86400), OFFERS, everywhere(), NOW)
    assert decision.chosen is None
    assert any("over_cap" in reason for reason in decision.reasons)


def test_a_deadline_shorter_than_any_local_render_goes_to_the_cloud_or_is_rejected() -> None:
    decision = route(request(resolution="720p", duration_s=5, deadline_s=900), OFFERS, everywhere(), NOW)
    for candidate in decision.candidates:
        if candidate.provider is ProviderKind.LOCAL:
            assert not candidate.feasible
    assert decision.chosen is None or decision.chosen.provider is not ProviderKind.LOCAL


@pytest.mark.parametrize("local", [{"up": False}, {"circuit": Circuit.OPEN}])
def test_local_down_or_circuit_open_never_routes_local(local: dict) -> None:
    decision = route(request(resolution="480p", duration_s=2, deadline_s=86400), OFFERS, everywhere(**local), NOW)
    assert decision.chosen is None or decision.chosen.provider is not ProviderKind.LOCAL
    assert all(not c.feasible for c in decision.candidates if c.provider is ProviderKind.LOCAL)


def test_a_full_local_queue_pushes_tight_deadlines_to_the_cloud_and_keeps_loose_ones_local() -> None:
    # With the studio's own minutes-per-frame, a local render costs more than most cloud offers, so cost alone
    # would send everything out. Price the cloud offer above the local one to see the queue decide by itself.
    local = offer("local/wan21-1.3b")
    cloud = offer("replicate/wan-2.1-t2v-480p")
    pricey = cloud.model_copy(update={"pricing": cloud.pricing.model_copy(update={"usd_per_gpu_second": Decimal(1)})})
    offers = [local, pricey]
    busy = everywhere(queue_wait_s=20 * 3600)
    tight = route(request(resolution="480p", duration_s=5, deadline_s=12 * 3600, priority="batch"), offers, busy, NOW)
    loose = route(request(resolution="480p", duration_s=5, deadline_s=4 * 86400, priority="batch"), offers, busy, NOW)
    assert tight.chosen is not None and tight.chosen.offer == pricey.id
    assert any(r.code == "deadline" for r in tight.candidates[0].reasons)
    assert loose.chosen is not None and loose.chosen.offer == local.id
    idle = route(request(resolution="480p", duration_s=5, deadline_s=12 * 3600, priority="batch"), offers,
                 everywhere(), NOW)
    assert idle.chosen is not None and idle.chosen.offer == local.id


def test_spend_modes_and_budgets_constrain_the_choice() -> None:
    body = {"resolution": "720p", "duration_s": 5, "deadline_s": 900}
    local_only = RoutingContext(targets=everywhere().targets, configured=ALL,
                                budgets=(BudgetState("tenant:acme", Decimal(100), SpendMode.LOCAL_ONLY),))
    assert route(request(**body), OFFERS, local_only, NOW).chosen is None  # the cloud could, but may not
    paused = RoutingContext(targets=everywhere().targets, configured=ALL,
                            budgets=(BudgetState("global", Decimal(100), SpendMode.PAUSED),))
    candidates = route(request(**body), OFFERS, paused, NOW).candidates
    assert all(any(r.code == "spend_mode" for r in c.reasons) for c in candidates)
    broke = RoutingContext(targets=everywhere().targets, configured=ALL,
                           budgets=(BudgetState("campaign:bf", Decimal("0.01")),))
    decision = route(request(**body), OFFERS, broke, NOW)
    assert decision.chosen is None and any("budget: " in r and "campaign:bf" in r for r in decision.reasons)


def test_learned_models_scale_the_estimates() -> None:
    body = request(resolution="512x512", aspect_ratio="1:1", duration_s=2, quality="draft", deadline_s=86400)
    plain = route(body, OFFERS, RoutingContext(), NOW).chosen
    slow = RoutingContext(learned={"local/animatediff-sd15": Learned(time_p50=2.0, runs=5)})
    learned = route(body, OFFERS, slow, NOW).chosen
    assert plain is not None and learned is not None
    assert learned.estimated_cost_usd > plain.estimated_cost_usd
    assert learned.estimated_ready_at > plain.estimated_ready_at


# --- properties ---------------------------------------------------------------------------------------------

requests = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["t2v", "i2v", "s2v", "camera", "inpaint"]),
        "resolution": st.sampled_from(["512x512", "480p", "720p", "1080p", "1280x720"]),
        "aspect_ratio": st.sampled_from(["16:9", "9:16", "1:1"]),
        "duration_s": st.sampled_from([1, 2, 4, 5, 6, 8, 10, 15]),
        "quality": st.sampled_from(["draft", "standard", "premium"]),
        "priority": st.sampled_from(["interactive", "batch"]),
    },
    optional={
        "fps": st.sampled_from([8, 16, 24, 30]),
        "max_cost_usd": st.sampled_from(["0.05", "0.30", "1.00", "3.00", "10.00"]),
        "deadline_s": st.sampled_from([600, 3600, 6 * 3600, 86400, 7 * 86400]),
    },
)
contexts = st.builds(
    lambda up, circuit, wait: everywhere(up=up, circuit=circuit, queue_wait_s=wait),
    st.booleans(), st.sampled_from(list(Circuit)), st.sampled_from([0.0, 3600.0, 40 * 3600.0]),
)


def assert_meets_hard_constraints(req: VideoRequest, decision: Decision, chosen: Chosen) -> None:
    """`chosen` is a row the engine found feasible, and meets the request's mode, floor, cost cap and deadline."""
    row = next(c for c in decision.candidates if c.offer == chosen.offer)
    assert row.feasible and not row.reasons
    assert req.mode in offer(chosen.offer).modes
    assert offer(chosen.offer).quality >= req.quality.min_score
    if req.max_cost_usd is not None:
        assert chosen.estimated_cost_p90_usd <= req.max_cost_usd
    if req.deadline_s is not None:
        assert chosen.estimated_ready_at <= NOW + timedelta(seconds=req.deadline_s)


@settings(max_examples=300, deadline=None)
@given(body=requests, context=contexts)
def test_the_choice_never_violates_a_hard_constraint(body: dict, context: RoutingContext) -> None:
    req = request(**body)
    decision = route(req, OFFERS, context, NOW)
    assert [c.offer for c in decision.candidates] == [o.id for o in OFFERS]
    assert decision == route(req, OFFERS, context, NOW)
    if decision.chosen is None:
        assert all(not c.feasible for c in decision.candidates) and decision.reasons
        return
    chosen, spec = decision.chosen, decision.chosen.delivered
    assert_meets_hard_constraints(req, decision, chosen)
    assert abs(spec.duration_s - req.duration_s) <= max(0.5, 0.25 * req.duration_s)
    if req.named_tier is None:
        assert (spec.width, spec.height) == req.size()
    assert chosen.offer not in decision.fallbacks


@settings(max_examples=200, deadline=None)
@given(body=requests, context=contexts)
def test_more_budget_or_more_time_never_makes_a_feasible_request_infeasible(body: dict,
                                                                             context: RoutingContext) -> None:
    if route(request(**body), OFFERS, context, NOW).chosen is None:
        return
    richer = {**body, "max_cost_usd": "10000"} if "max_cost_usd" in body else body
    later = {**richer, "deadline_s": body["deadline_s"] * 2} if "deadline_s" in body else richer
    assert route(request(**richer), OFFERS, context, NOW).chosen is not None
    assert route(request(**later), OFFERS, context, NOW).chosen is not None


# --- exploration never breaks a hard constraint --------------------------------------------------------------

LOCAL_IDS = [o.id for o in OFFERS if o.provider is ProviderKind.LOCAL]
explorations = st.builds(
    lambda margin, z, usd, runs, factor, floor, budget: (
        Exploration(draw=0.0, jobs_left=3, usd_left=Decimal(usd), share=1.0, margin_s=margin, z=z, min_runs=3),
        {offer_id: Learned(runs=runs, time_p50=factor, time_floor=floor) for offer_id in LOCAL_IDS},
        () if budget is None else (BudgetState(scope="tenant:t", remaining_usd=Decimal(budget)),)),
    st.sampled_from([0.0, 600.0, 3600.0]), st.sampled_from([1.28, 3.0, 5.0]), st.sampled_from(["100", "1", "0.05"]),
    st.sampled_from([0, 1, 2, 3]), st.sampled_from([1.0, 0.2, 5.0, 0.01]), st.sampled_from([None, None, 0.05, 2.0]),
    st.sampled_from([None, None, "0.10", "0.80", "5.00"]),
)
# Mostly an idle GPU or one reporting its jobs, where exploring can happen at all (`contexts` above is idle one time
# in eighteen), and always a deadline, which the abandon point is measured back from.
H = 3600.0
QUEUES: list[tuple[Work, ...]] = [
    (Work(left_s=1800, due=NOW + timedelta(hours=2), running=True),),
    (Work(left_s=1800, due=NOW + timedelta(hours=3), running=True), Work(left_s=2 * H, due=NOW + timedelta(hours=12)),
     Work(left_s=H, due=NOW + timedelta(hours=26))),
    (Work(left_s=600, running=True), Work(left_s=H, due=NOW + timedelta(hours=5))),
    (Work(left_s=300, due=NOW + timedelta(hours=30), running=True), Work(left_s=20 * H, due=NOW + timedelta(hours=22))),
]
idle_contexts = st.one_of(
    st.builds(lambda wait: everywhere(queue_wait_s=wait), st.sampled_from([0.0, 0.0, 60.0])),
    st.builds(lambda queue: everywhere(queue=queue, queue_wait_s=localqueue.wait_s(queue, None, 1)),
              st.sampled_from(QUEUES)))
with_deadlines = st.tuples(requests, st.sampled_from([1800, 3 * 3600, 12 * 3600, 86400, 7 * 86400])).map(
    lambda pair: {**pair[0], "deadline_s": pair[1]})


@settings(max_examples=600, deadline=None)
@given(body=with_deadlines, context=idle_contexts, exploring=explorations)
def test_exploration_never_breaks_a_hard_constraint(body: dict, context: RoutingContext, exploring: tuple) -> None:
    allowed, learned, budgets = exploring
    req = request(**body)
    plain_context = replace(context, learned=learned, budgets=budgets)
    plain = route(req, OFFERS, plain_context, NOW)
    decision = route(req, OFFERS, replace(plain_context, exploration=allowed), NOW)
    chosen = decision.chosen
    if chosen is None or chosen.explored is None:
        assert decision == plain  # not exploring: the engine's usual decision, to the letter
        return
    assert chosen.explore_until is not None and req.deadline_s is not None
    deadline = NOW + timedelta(seconds=req.deadline_s)
    explored = offer(chosen.offer)
    local = context.targets[ProviderKind.LOCAL]
    assert explored.provider is ProviderKind.LOCAL and (local.queue or local.queue_wait_s == 0)
    # Held on the GPU from now until its abandon point, the try pushes no queued job that was on time past its
    # deadline.
    held_s = (chosen.explore_until - NOW).total_seconds()
    assert not localqueue.displaces(local.queue, deadline, held_s, local.slots, NOW)
    assert learned[chosen.offer].runs < allowed.min_runs
    assert req.mode in explored.modes and explored.quality >= req.quality.min_score
    # A fallback the engine found feasible without exploring, with its p90 time kept after the abandon point.
    assert plain.chosen is not None and decision.fallbacks[0] == plain.chosen.offer
    fallback = plain.chosen
    assert chosen.explore_until + (fallback.estimated_ready_at - NOW) + timedelta(seconds=allowed.margin_s) <= deadline
    assert chosen.estimated_ready_at <= deadline
    # Money, pessimistically: the higher of the catalog's and the learned p90, with the fallback's counted.
    catalog_row = next(c for c in route(req, OFFERS, replace(plain_context, learned={}), NOW).candidates
                       if c.offer == chosen.offer)
    learned_row = next(c for c in plain.candidates if c.offer == chosen.offer)
    assert catalog_row.estimated_cost_p90_usd is not None and learned_row.estimated_cost_p90_usd is not None
    assert chosen.estimated_cost_p90_usd >= max(catalog_row.estimated_cost_p90_usd, learned_row.estimated_cost_p90_usd)
    total = chosen.estimated_cost_p90_usd + fallback.estimated_cost_p90_usd
    if req.max_cost_usd is not None:
        assert total <= req.max_cost_usd
    assert all(total <= b.remaining_usd for b in budgets)
    assert chosen.estimated_cost_p90_usd <= allowed.usd_left
    # Only a candidate its time alone ruled out (or a feasible one) is ever tried.
    assert all(r.code in ("deadline", "displaces") for r in learned_row.reasons)
