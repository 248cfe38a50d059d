"""The routing benchmark (hvr/sim): the generator's mix and determinism, the simulator's invariants, the counting
rules, the offline bound against the policies and against brute force, and `hvr simulate`."""

import itertools
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvr.sim import baselines, optimal, workload
from hvr.sim.cli import SAMPLE_SEED, SAMPLE_WORKLOAD
from hvr.sim.cli import main as simulate_cli
from hvr.sim.compare import DEFAULT_POLICIES, OPTIMUM, compare
from hvr.sim.counting import Fit, idle_context, place
from hvr.sim.scenario import REPO_ROOT, ScenarioError, parse
from hvr.sim.scenario import load as load_scenario
from hvr.sim.simulator import SimConfig, infeasible_flags, simulate
from hvr.sim.truth import Outage, Truth, TruthConfig
from hvr.sim.workload import Arrival
from router.models.common import ProviderKind, money
from router.models.offer import with_local_cost_basis
from router.models.outcome import AttemptCode
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.policy.engine import route
from router.policy.exploration import Limits

OFFERS = load_catalog().offers
MONDAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def arrival(minutes: float, **fields: object) -> Arrival:
    body = {"mode": "t2v", "prompt": "a red balloon", **fields}
    for name, ref in (("image", "s3://b/i.png"), ("audio", "s3://b/a.wav")):
        if name in {"i2v": {"image"}, "camera": {"image"}, "s2v": {"image", "audio"}}.get(str(body["mode"]), set()):
            body.setdefault(name, ref)
    return Arrival(MONDAY + timedelta(minutes=minutes), VideoRequest.model_validate(body))


def busy_days(seed: int, videos: int = 60) -> list[Arrival]:
    """A month's mix squeezed into two days: the local GPU is contended, so jobs queue, get refused and expire."""
    return workload.generate(videos, seed=seed, start=MONDAY.replace(hour=0), days=2)


# --- workloads ---------------------------------------------------------------------------------------------------


def test_the_mix_is_exact_by_count() -> None:
    expected = {"social": 400, "product_demo": 150, "product_i2v": 150, "commercial": 80, "lipsync": 70,
                "camera": 50, "burst": 100}
    assert workload.quotas(1000) == expected
    assert Counter(a.klass for a in workload.generate(1000, seed=7)) == expected
    assert sum(workload.quotas(37).values()) == 37


def test_the_generator_is_deterministic_per_seed() -> None:
    first, again, other = workload.generate(150, seed=5), workload.generate(150, seed=5), workload.generate(150, 6)
    assert workload.dumps(first) == workload.dumps(again)
    assert workload.dumps(first) != workload.dumps(other)
    assert [a.at for a in first] == sorted(a.at for a in first)


def test_workloads_round_trip_through_json_lines(tmp_path: Path) -> None:
    arrivals = workload.generate(80, seed=3)
    path = tmp_path / "w.jsonl"
    workload.save(arrivals, path)
    assert workload.dumps(workload.load(path)) == workload.dumps(arrivals)
    with pytest.raises(ValueError, match=":2:"):
        workload.loads(path.read_text().splitlines()[0] + "\n{\"arrival\": \"2026-11-01T00:00:00\"}\n")


def test_the_sample_month_is_the_generators_output() -> None:
    assert SAMPLE_WORKLOAD.read_text() == workload.dumps(workload.generate(1000, seed=SAMPLE_SEED))


def test_each_class_follows_the_issue() -> None:
    arrivals = workload.generate(2000, seed=11)
    for a in arrivals:
        r, deadline_h = a.request, ((a.deadline() or a.at) - a.at).total_seconds() / 3600
        if a.klass == "social":
            assert r.mode.value == "t2v" and r.resolution in ("512x512", "480p") and 2 <= r.duration_s <= 8
            assert 1 <= deadline_h <= 6 and Decimal("0.30") <= (r.max_cost_usd or 0) <= Decimal("1.00")
            assert r.resolution == "480p" or r.quality.value == "draft"
        elif a.klass == "commercial":
            assert (r.resolution, r.quality.value, deadline_h) == ("1080p", "premium", 48) and 5 <= r.duration_s <= 8
            assert Decimal(3) <= (r.max_cost_usd or 0) <= Decimal(6)
        elif a.klass == "lipsync":
            assert (r.mode.value, r.duration_s, deadline_h) == ("s2v", 10, 12) and r.resolution in ("480p", "720p")
        elif a.klass == "camera":
            assert (r.mode.value, r.resolution, r.quality.value, deadline_h) == ("camera", "720p", "premium", 48)
        elif a.klass in ("product_demo", "product_i2v"):
            assert (r.resolution, r.duration_s, r.quality.value, deadline_h) == ("720p", 5, "standard", 24)
    bursts: dict[str, list[Arrival]] = {}
    for a in arrivals:
        if a.klass == "burst":
            bursts.setdefault(a.request.campaign_id or "", []).append(a)
    assert bursts and sum(map(len, bursts.values())) == 200
    for items in bursts.values():
        assert 50 <= len(items) <= 300
        assert len({a.deadline() for a in items}) == 1 and len({a.request.quality for a in items}) == 1
        first = min(a.at for a in items)
        assert 8 <= ((items[0].deadline() or first) - first).total_seconds() / 3600 <= 24


def test_arrivals_follow_the_working_day() -> None:
    arrivals = workload.generate(3000, seed=2)
    by_hour = Counter(a.at.hour for a in arrivals if a.at.weekday() < 5 and a.klass != "burst")
    day = sum(by_hour[h] for h in range(9, 18)) / 9
    night = sum(by_hour[h] for h in range(0, 6)) / 6
    assert day > 3 * night


# --- truth -------------------------------------------------------------------------------------------------------


def test_render_times_sit_on_the_catalogs_p50_and_p90() -> None:
    offer = next(o for o in OFFERS if o.id == "local/animatediff-sd15")
    spec = place(offer, arrival(0, resolution="512x512", aspect_ratio="1:1", quality="draft",
                                duration_s=2).request).delivered
    assert spec is not None
    truth = Truth(TruthConfig(seed=4))
    draws = sorted(truth.render_s(key, offer, spec) for key in range(4000))
    p50 = offer.latency.compute_seconds(spec.width, spec.height, spec.frames, p90=False)
    p90 = offer.latency.compute_seconds(spec.width, spec.height, spec.frames, p90=True)
    assert abs(draws[2000] / p50 - 1) < 0.02
    assert 0.88 < sum(d <= p90 for d in draws) / len(draws) < 0.92
    # Keyed draws: a fresh world asked in another order answers the same.
    assert Truth(TruthConfig(seed=4)).render_s(17, offer, spec) == truth.render_s(17, offer, spec)
    assert Truth(TruthConfig(seed=5)).render_s(17, offer, spec) != truth.render_s(17, offer, spec)


# --- the simulator -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("policy", list(baselines.POLICIES))
def test_every_request_ends_once_and_its_bills_add_up(seed: int, policy: str) -> None:
    arrivals = busy_days(seed)
    flaky = TruthConfig(seed=seed, failure_rate=dict.fromkeys(ProviderKind, 0.25))  # fallbacks and partial bills
    run = simulate(arrivals, OFFERS, baselines.make(policy, OFFERS), Truth(flaky))
    assert len(run.jobs) == len(arrivals)
    for job in run.jobs:
        assert job.status in ("succeeded", "failed", "rejected", "expired")
        assert job.ended_at is not None and job.ended_at >= job.arrival_t
        assert len(job.attempts) <= 3
        for attempt in job.attempts:
            assert attempt.cost == money(attempt.cost) and attempt.cost >= 0
            assert attempt.cost == expected_bill(attempt)
            assert attempt.status in ("succeeded", "failed", "cancelled", "refused")
        assert sum(a.status == "succeeded" for a in job.attempts) == (job.status == "succeeded")
    per_offer: dict[str, Decimal] = {}
    for job in run.jobs:
        for attempt in job.attempts:
            per_offer[attempt.offer.id] = per_offer.get(attempt.offer.id, Decimal(0)) + attempt.cost
    assert sum(per_offer.values(), Decimal(0)) == run.total_cost == sum((j.cost for j in run.jobs), Decimal(0))
    assert any(a.status == "failed" for j in run.jobs for a in j.attempts)


def expected_bill(attempt: object) -> Decimal:
    """The provider's bill, worked out independently: GPU-seconds run for time-billed offers, whatever the outcome;
    per-second and per-video prices only for a delivered video; nothing for a refusal or a never-started job."""
    from hvr.sim.simulator import AttemptRecord

    assert isinstance(attempt, AttemptRecord)
    spec, offer = attempt.delivered, attempt.offer
    if spec is None or attempt.started_at is None:
        return Decimal("0.0000")
    unit, price = offer.price_for(spec.width, spec.height, spec.duration_s) or ("none", Decimal(0))
    ran = Decimal(str(attempt.gpu_seconds))
    if unit == "gpu_second":
        if attempt.status == "succeeded":
            assert abs(float(ran) - attempt.render_s - attempt.cold_s) < 2e-3
        return money(price.quantize(Decimal("1e-10")) * ran)
    if attempt.status != "succeeded":
        return Decimal("0.0000")
    return money(price * Decimal(f"{spec.duration_s:.3f}")) if unit == "output_second" else money(price)


def test_hvr_plans_a_campaign_when_its_manifest_arrives_and_follows_the_plan() -> None:
    """As the services: the whole manifest is planned at its first item (the knapsack of `policy.plan`, among the
    jobs the GPU holds), and each item's first decision is given its planned offer (`follow_plan` keeps it
    while the engine finds it feasible); a retry routes afresh. Baselines route item by item."""
    deadline = (MONDAY + timedelta(days=2)).isoformat()
    shapes = [{"resolution": "720p", "aspect_ratio": "9:16", "quality": "standard", "duration_s": 5.0},
              {"resolution": "512x512", "aspect_ratio": "1:1", "quality": "draft", "duration_s": 2.0}]  # GPU-only
    items = [arrival(n * 2 / 60, **shapes[n % 2], deadline=deadline, priority="batch", campaign_id="campaign-1")
             for n in range(12)]
    singles = [arrival(30 + n, resolution="480p", aspect_ratio="16:9", duration_s=4.0) for n in range(3)]
    plans: list[list[int]] = []
    given_plans: dict[int, list[str | None]] = {}

    class Spy(baselines.Hvr):
        def campaign_plan(self, items, context, now, gpu, local_up):  # type: ignore[no-untyped-def]
            plans.append([key for key, _, _ in items])
            planned = super().campaign_plan(items, context, now, gpu, local_up)
            assert set(planned) <= {key for key, _, _ in items}
            return planned

        def decide(self, request, context, now, deadline, planned=None):  # type: ignore[no-untyped-def]
            chosen = super().decide(request, context, now, deadline, planned)
            key = next(n for n, a in enumerate(items + singles) if a.request is request)
            given_plans.setdefault(key, []).append(planned)
            if planned is not None and chosen is not None and chosen.offer == planned and \
                    route(request, OFFERS, context, now, deadline).chosen.offer != planned:  # type: ignore[union-attr]
                assert chosen.reason.startswith("campaign plan")
            return chosen

    truth = Truth(TruthConfig(seed=3, time_bias={"local": 0.02}, failure_rate={"replicate": 0.3}))
    run = simulate(items + singles, OFFERS, Spy(OFFERS, 3, Limits(share=0)), truth)
    assert plans == [list(range(12))]  # once, at the first item, with the whole manifest
    assert all(given_plans[key][0] is not None for key in range(12))
    assert all(planned is None for key in range(12) for planned in given_plans[key][1:])  # retries: afresh
    assert all(given_plans[key] == [None] for key in range(12, 15))  # not campaign items
    locals_ = [job for job in run.jobs[:12] if job.attempts[0].offer.provider is ProviderKind.LOCAL]
    assert 0 < len(locals_) < 12 and all(given_plans[job.key][0] == job.attempts[0].offer.id for job in locals_)


def test_a_run_is_reproducible_from_its_seed() -> None:
    def outcome(seed: int) -> list[tuple[str, Decimal, float | None]]:
        run = simulate(busy_days(1), OFFERS, baselines.make("hvr", OFFERS), Truth(TruthConfig(seed=seed)))
        return [(j.status, j.cost, j.ended_at) for j in run.jobs]

    assert outcome(1) == outcome(1)
    assert outcome(1) != outcome(2)


@pytest.mark.parametrize("policy", list(baselines.POLICIES))
def test_deadlines_are_judged_on_the_virtual_clock(policy: str) -> None:
    arrivals = busy_days(3)
    comparison = compare(arrivals, OFFERS, seed=3, policies=[policy])
    run, metrics = comparison.runs[policy], comparison.metrics[policy]
    for job in run.jobs:
        assert job.deadline_t is not None and job.ended_at is not None
        if job.status == "succeeded":
            assert job.ended_at <= job.deadline_t
        if job.status == "expired":
            assert job.ended_at == job.deadline_t
        if job.on_time:
            assert job.final is not None and job.final.fit is Fit.OK
    assert metrics.on_time == sum(j.on_time for j in run.jobs if not j.infeasible)
    assert metrics.feasible == len(arrivals) - sum(j.infeasible for j in run.jobs)
    assert metrics.deadline_hit_rate == pytest.approx(metrics.on_time / metrics.feasible)


def test_the_local_gpu_renders_one_job_at_a_time_in_arrival_order() -> None:
    run = simulate(busy_days(4), OFFERS, baselines.make("cheapest_feasible", OFFERS), Truth(TruthConfig(seed=4)))
    local = sorted((a.started_at, a.ended_at, a.routed_at) for j in run.jobs for a in j.attempts
                   if a.offer.provider is ProviderKind.LOCAL and a.started_at is not None)
    assert len(local) > 3
    for (_, end, routed), (start, _, later_routed) in itertools.pairwise(local):
        assert end is not None and start is not None and start >= end - 1e-9  # one slot
        assert later_routed >= routed  # FIFO: started in the order they were queued
    assert run.local_busy_s == pytest.approx(sum((end or 0) - start for start, end, _ in local), abs=1e-3)


def test_infeasible_requests_are_counted_apart() -> None:
    arrivals = [
        arrival(0, resolution="512x512", aspect_ratio="1:1", quality="standard"),  # only AnimateDiff, quality 3
        arrival(1, resolution="720p", duration_s=5, deadline_s=30),  # nothing renders 5 s of 720p in 30 s
        arrival(2, resolution="480p", aspect_ratio="9:16", duration_s=5, deadline_s=7200),
    ]
    assert infeasible_flags(arrivals, OFFERS) == [True, True, False]
    metrics = compare(arrivals, OFFERS, seed=0, policies=["hvr", "always_veo"]).metrics
    assert metrics["hvr"].infeasible == 2 and metrics["hvr"].feasible == 1
    assert metrics["hvr"].deadline_hit_rate == 1.0 and metrics["hvr"].rejected == 2
    assert metrics["always_veo"].deadline_hit_rate == 0.0  # Veo has no 480p: a capability miss


def test_a_request_sent_where_it_cant_be_done_misses_everything() -> None:
    lipsync = arrival(0, mode="s2v", resolution="480p", duration_s=10, deadline_s=43200)
    short = arrival(1, resolution="720p", duration_s=2, deadline_s=7200)  # Veo renders 4 s at the least
    run = simulate([lipsync, short], OFFERS, baselines.make("static_rule", OFFERS), Truth(TruthConfig(seed=1)))
    refused, mismatched = run.jobs
    for job in (refused, mismatched):
        assert job.capability_miss and job.quality_violation and not job.on_time
    assert refused.status == "failed" and refused.cost == 0  # the provider refuses: nothing rendered, nothing billed
    assert mismatched.status == "succeeded" and mismatched.cost == Decimal("0.4000")  # 4 s of Veo Fast, billed


@settings(max_examples=150, deadline=None)
@given(mode=st.sampled_from(["t2v", "i2v", "s2v", "camera"]),
       resolution=st.sampled_from(["512x512", "480p", "720p", "1080p"]),
       aspect=st.sampled_from(["16:9", "9:16", "1:1"]), quality=st.sampled_from(["draft", "standard", "premium"]),
       duration=st.sampled_from([2, 3.5, 5, 8, 10]), deadline_h=st.sampled_from([1, 6, 24, 48]))
def test_hvr_never_sends_a_request_below_its_floor(mode: str, resolution: str, aspect: str, quality: str,
                                                     duration: float, deadline_h: int) -> None:
    a = arrival(0, mode=mode, resolution=resolution, aspect_ratio=aspect, quality=quality, duration_s=duration,
                deadline_s=deadline_h * 3600)
    choice = baselines.make("hvr", OFFERS).decide(a.request, idle_context(), a.at, a.deadline())
    if choice is not None:
        offer = choice if isinstance(choice, str) else choice.offer
        assert place(next(o for o in OFFERS if o.id == offer), a.request).fit is Fit.OK


@pytest.mark.parametrize("seed", [5, 6])
def test_hvr_violates_no_quality_floor_over_a_busy_workload(seed: int) -> None:
    run = simulate(busy_days(seed, 80), OFFERS, baselines.make("hvr", OFFERS), Truth(TruthConfig(seed=seed)))
    assert not any(j.quality_violation or j.capability_miss for j in run.jobs)
    assert all(a.fit is Fit.OK for j in run.jobs for a in j.attempts)


def test_a_budget_holds_spend_to_the_limit_plus_recorded_excess() -> None:
    limit = Decimal("3.00")
    run = simulate(busy_days(7), OFFERS, baselines.make("hvr", OFFERS), Truth(TruthConfig(seed=7)),
                   SimConfig(budget_usd=limit))
    from hvr.sim.counting import estimated_p90_cost

    excess = sum((max(Decimal(0), a.cost - (estimated_p90_cost(a.offer, a.delivered) or Decimal(0)))
                  for j in run.jobs for a in j.attempts if a.delivered is not None), Decimal(0))
    assert run.total_cost <= limit + excess
    unlimited = simulate(busy_days(7), OFFERS, baselines.make("hvr", OFFERS), Truth(TruthConfig(seed=7)))
    assert unlimited.total_cost > limit  # the budget did bind...
    assert sum(j.delivered for j in run.jobs) < sum(j.delivered for j in unlimited.jobs)  # ...and cost videos


# --- the offline bound -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "days"), [(1, 2), (2, 2), (3, 30), (4, 30)])
def test_the_bound_is_below_every_policys_cost(seed: int, days: int) -> None:
    """Each policy's matched bound (the cheapest way to deliver what it delivered on time) is below its cost; the
    optimum's own cost is below that of every policy meeting as many deadlines as it does."""
    arrivals = workload.generate(40, seed=seed, start=MONDAY.replace(hour=0), days=days)
    comparison = compare(arrivals, OFFERS, seed=seed)
    best = comparison.metrics[OPTIMUM]
    solution = comparison.optimum
    assert solution is not None and solution.optimal and solution.bound <= solution.cost
    for name, m in comparison.metrics.items():
        if name == OPTIMUM:
            continue
        assert m.matched_bound_usd is not None and m.matched_bound_usd <= m.total_cost_usd, name
        assert m.on_time <= best.on_time, name  # nobody meets more deadlines than the optimum
        if m.on_time == best.on_time:
            assert solution.bound <= m.total_cost_usd, name


def test_what_the_bound_omits_is_each_policys_cold_starts_and_undelivering_attempts() -> None:
    """Reported beside the ratios: failed, abandoned and cancelled attempts in full, and the cold start a delivering
    attempt was billed (a GPU-second price times its seconds), on the requests the ratios count, and no more."""
    arrivals = busy_days(5)
    truth = TruthConfig(seed=5, failure_rate={"replicate": 0.3}, cold_start_s={"runpod": 240})
    comparison = compare(arrivals, OFFERS, seed=5, truth_config=truth, matched_bounds=False)
    seen = 0
    for name, m in comparison.metrics.items():
        if name == OPTIMUM:
            assert m.bound_omits_usd == 0
            continue
        expected = Decimal(0)
        for job in comparison.runs[name].jobs:
            if job.infeasible:
                continue
            for a in job.attempts:
                if a.status != "succeeded":
                    expected += a.cost
                elif a.cold_s and a.delivered is not None:
                    unit, price = a.offer.price_for(a.delivered.width, a.delivered.height, a.delivered.duration_s)
                    if unit == "gpu_second":  # a per-video or per-second price doesn't bill the wait
                        seen += 1
                        expected += money(price.quantize(Decimal("1e-10")) * Decimal(f"{a.cold_s:.3f}"))
        assert m.bound_omits_usd == expected, name
        assert 0 <= m.second_half_bound_omits_usd <= m.bound_omits_usd <= m.total_cost_usd - m.infeasible_cost_usd
    assert seen and comparison.metrics["hvr"].bound_omits_usd > 0


def test_the_optimum_is_below_hvr_when_both_serve_everything() -> None:
    arrivals = [
        # The GPU-only draft first: an exploring try would otherwise hold the idle GPU when it comes (hvr explores).
        arrival(0, resolution="512x512", aspect_ratio="1:1", quality="draft", duration_s=2, deadline_s=4 * 3600),
        arrival(0, resolution="480p", aspect_ratio="9:16", duration_s=5, deadline_s=3600, max_cost_usd="0.50"),
        arrival(3, resolution="720p", duration_s=5, deadline_s=86400, quality="standard", priority="batch"),
        arrival(7, mode="i2v", resolution="720p", duration_s=5, deadline_s=86400, priority="batch"),
        arrival(9, resolution="1080p", duration_s=6, quality="premium", deadline_s=172800, max_cost_usd="4.00"),
        arrival(12, mode="s2v", resolution="480p", duration_s=10, deadline_s=43200),
    ]
    calm = TruthConfig(seed=1, failure_rate={})
    comparison = compare(arrivals, OFFERS, seed=1, policies=["hvr", OPTIMUM], truth_config=calm)
    hvr, best = comparison.metrics["hvr"], comparison.metrics[OPTIMUM]
    assert hvr.on_time == best.on_time == len(arrivals)
    assert best.total_cost_usd <= hvr.total_cost_usd
    assert hvr.cost_ratio_to_optimum is not None and hvr.cost_ratio_to_optimum >= 1.0


def contended() -> list[Arrival]:
    """Twelve requests, eight of them AnimateDiff drafts that can't all fit on the one GPU in time."""
    drafts = [arrival(10 * n, resolution="512x512", aspect_ratio="1:1", quality="draft", duration_s=2,
                      deadline_s=3 * 3600, max_cost_usd="1.00") for n in range(8)]
    return [*drafts,
            arrival(5, mode="camera", resolution="720p", quality="premium", duration_s=3, deadline_s=20 * 3600),
            arrival(15, resolution="480p", aspect_ratio="9:16", duration_s=4, deadline_s=7200),
            arrival(25, resolution="480p", aspect_ratio="9:16", duration_s=5, deadline_s=7200),
            arrival(35, resolution="720p", duration_s=5, deadline_s=24 * 3600)]


def brute_force(arrivals: list[Arrival], truth: Truth) -> tuple[int, Decimal]:
    """Every assignment of every request to its cheapest cloud candidate, any local candidate or nothing; a local
    set is feasible when preemptive earliest-deadline-first meets every deadline. Most served, then cheapest."""
    start = arrivals[0].at.replace(hour=0, minute=0, second=0)
    flags = infeasible_flags(arrivals, OFFERS)
    options: list[list[optimal.Candidate | None]] = []
    for i, a in enumerate(arrivals):
        found = [] if flags[i] else [
            c for o in OFFERS
            if (c := optimal.candidate(i, a, o, truth, (a.at - start).total_seconds(),
                                       ((a.deadline() or a.at) - start).total_seconds())) is not None]
        cloud = min((c for c in found if not c.local), key=lambda c: c.cost, default=None)
        options.append([*([cloud] if cloud else []), *(c for c in found if c.local), None])
    best: tuple[int, Decimal] = (0, Decimal(0))
    for combo in itertools.product(*options):
        served = [c for c in combo if c is not None]
        key = (len(served), sum((c.cost for c in served), Decimal(0)))
        if (key[0], -key[1]) <= (best[0], -best[1]):
            continue
        if edf_feasible([(c.window[0], c.window[1], c.render_s) for c in served if c.local]):
            best = key
    return best


def edf_feasible(jobs: list[tuple[float, float, float]]) -> bool:
    jobs = sorted(jobs)
    left = {n: work for n, (_, _, work) in enumerate(jobs)}
    t = 0.0
    while left:
        ready = [n for n in left if jobs[n][0] <= t + 1e-9]
        if not ready:
            t = min(jobs[n][0] for n in left)
            continue
        n = min(ready, key=lambda m: jobs[m][1])
        upcoming = [jobs[m][0] for m in left if jobs[m][0] > t + 1e-9]
        step = min([left[n], *[u - t for u in upcoming]])
        t += step
        left[n] -= step
        if left[n] <= 1e-9:
            del left[n]
            if t > jobs[n][1] + 1e-6:
                return False
    return True


@pytest.mark.parametrize("seed", [0, 1])
def test_the_milp_equals_brute_force_on_a_small_contended_instance(seed: int) -> None:
    arrivals, truth = contended(), Truth(TruthConfig(seed=seed))
    problem = optimal.Problem.of(arrivals, OFFERS, truth, infeasible_flags(arrivals, OFFERS))
    solution = problem.solve(gap=0.0)
    served, cost = brute_force(arrivals, truth)
    assert len(solution.served) == served < len(problem.servable())  # the GPU can't take every draft
    assert solution.cost == cost


# --- the command -------------------------------------------------------------------------------------------------


def test_hvr_simulate_writes_the_table_json_and_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.jsonl"
    workload.save(busy_days(8, 30), path)
    code = simulate_cli(["--workload", str(path), "--seed", "8", "--out", str(tmp_path / "out"), "--chart",
                         "--policies", "hvr", "static_rule", "offline_optimum"])
    assert code == 0
    assert "| hvr |" in capsys.readouterr().out
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert document["seed"] == 8 and set(document["policies"]) == {"hvr", "static_rule", "offline_optimum"}
    for figures in document["policies"].values():
        for key in ("total_cost_usd", "cost_per_video_usd", "deadline_hit_rate", "quality_violations",
                    "capability_misses", "gpu_utilization", "p50_turnaround_s", "p95_turnaround_s",
                    "cost_ratio_to_optimum"):
            assert key in figures
    hvr, static = document["policies"]["hvr"], document["policies"]["static_rule"]
    per_video = (Decimal(hvr["total_cost_usd"]) / hvr["delivered"]) / (
        Decimal(static["total_cost_usd"]) / static["delivered"])
    assert hvr["cost_ratio_to_static_rule_per_video"] == pytest.approx(float(per_video), abs=1e-4)
    static_check = document["targets"]["cost_ratio_to_static_rule_per_video"]
    assert static_check["holds"] == (static_check["value"] <= 0.5 and hvr["deadline_hit_rate"]
                                     >= static["deadline_hit_rate"])
    assert static_check["optimum"] == pytest.approx(document["policies"]["offline_optimum"][
        "cost_ratio_to_static_rule_per_video"], abs=1e-4)
    assert (tmp_path / "out" / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out" / "report.md").read_text().startswith("## hvr simulate")


def test_hvr_simulate_refuses_what_it_cant_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate_cli(["--workload", str(tmp_path / "missing.jsonl")]) == 1
    with pytest.raises(SystemExit) as exc:
        simulate_cli(["--policies", "magic"])
    assert exc.value.code == 2
    assert simulate_cli(["--chart"]) == 2  # no path and no --out
    assert "--chart needs a PATH" in capsys.readouterr().err


def test_hvr_registers_simulate_without_loading_the_simulator() -> None:
    import argparse
    import subprocess
    import sys

    from hvr.sim.cli import POLICY_NAMES, register, run

    assert POLICY_NAMES == DEFAULT_POLICIES
    hvr = argparse.ArgumentParser(prog="hvr")
    register(hvr.add_subparsers(dest="command"))
    args = hvr.parse_args(["simulate", "--videos", "5", "--policies", "hvr", "static_rule"])
    assert (args.run, args.client, args.videos, args.policies) == (run, False, 5, ["hvr", "static_rule"])
    code = ("import sys, hvr.sim.cli; "
            "sys.exit(any(m in sys.modules for m in ('scipy', 'hvr.sim.compare', 'router.policy.engine')))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- scenarios ---------------------------------------------------------------------------------------------------

SCENARIOS = sorted((REPO_ROOT / "samples" / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize(("text", "where"), [
    ("seed: 7\ncolour: blue\n", ":2: colour: unknown key"),
    ("seed: yes\n", ":1: seed: expected a whole number"),
    ("seed: 7\nseed: 8\n", ":2: seed: given twice"),
    ("truth:\n  speed: {local: 2}\n", ":2: truth.speed: unknown key"),
    ("truth:\n  time_bias: {local: -1}\n", ":2: truth.time_bias.local: must be over 0"),
    ("truth:\n  failure_rate:\n    veo: 0.1\n    nvidia: 0.1\n", ":4: truth.failure_rate.nvidia: 'nvidia' is neither"),
    ("truth:\n  failure_rate: {veo: 1.5}\n", ":2: truth.failure_rate.veo: must be at most 1"),
    ("truth:\n  cold_start_s:\n    local: 30\n", ":3: truth.cold_start_s.local: the local GPU has no cold start"),
    ("truth:\n  outages:\n    - {provider: veo, from_day: 2}\n", ":3: truth.outages[0].hours: missing"),
    ("truth:\n  outages:\n    - provider: veo\n      from_day: two\n      hours: 3\n",
     ":4: truth.outages[0].from_day: expected a number"),
    ("truth:\n  outages: {provider: veo}\n", ":2: truth.outages: expected a list"),
    ("truth:\n  local_slots: 0\n", ":2: truth.local_slots: must be at least 1"),
    ("workload: {videos: 10, file: samples/workloads/month-1000.jsonl}\n", ":1: workload.videos: a workload is"),
    ("\nworkload:\n  file: nowhere.jsonl\n", ":3: workload.file: no such file"),
    ("budget_usd: -4\n", ":1: budget_usd: expected an amount in USD over 0"),
    ("local_cost_basis: cheap\n", ":1: local_cost_basis: expected one of marginal, full"),
    ("targets: {cost_ratio_to_static: 2}\n", ":1: targets.cost_ratio_to_static: unknown key"),
    ("seed: [1, 2\n", ":2: yaml:"),
    ("- seed\n", ":1: scenario: expected a mapping"),
    ("", ":1: scenario: the file is empty"),
])
def test_a_bad_scenario_is_refused_naming_key_and_line(text: str, where: str) -> None:
    refused_at(text, where)


def refused_at(text: str, where: str) -> None:
    """Scenario `text` is refused, the message starting with the file and `where` (":line: key: why")."""
    with pytest.raises(ScenarioError) as exc:
        parse(text, Path("s.yaml"), OFFERS)
    assert str(exc.value).startswith(f"s.yaml{where}"), str(exc.value)


def test_a_scenario_sets_the_world_and_an_offer_id_wins_over_its_kind() -> None:
    scenario = parse("seed: 4\ntruth:\n  time_bias: {local: 0.5, local/animatediff-sd15: 2}\n"
                     "  failure_rate: {veo: 0.1}\n  cold_start_s: {runpod: 240}\n"
                     "  outages: [{provider: replicate/wan-2.2-t2v-fast, from_day: 1.5, hours: 6}]\n"
                     "workload: {videos: 50}\nbudget_usd: 40.5\nlocal_cost_basis: full\n", Path("s.yaml"), OFFERS)
    assert (scenario.seed, scenario.truth.seed, scenario.videos, scenario.budget_usd) == (4, 4, 50, Decimal("40.5"))
    assert len(scenario.arrivals()) == 50 and scenario.workload_label() == "generated: 50 videos, seed 4"
    truth, catalog = Truth(scenario.truth), Truth(TruthConfig(seed=4))
    by_id = {o.id: o for o in OFFERS}
    spec = place(by_id["local/animatediff-sd15"], arrival(0, resolution="512x512", aspect_ratio="1:1",
                                                          quality="draft").request).delivered
    assert spec is not None
    for offer_id, bias in (("local/animatediff-sd15", 2.0), ("local/wan21-1.3b", 0.5)):
        offer = by_id[offer_id]
        assert truth.render_s(1, offer, spec) == pytest.approx(bias * catalog.render_s(1, offer, spec), rel=1e-3)
    assert scenario.truth.failure_rate["veo"] == 0.1 and scenario.truth.failure_rate["runpod"] == 0.03  # merged
    assert truth.cold_start_s(by_id["runpod/wan-2-5"]) == 240 and truth.cold_start_s(by_id["veo/veo-3.0"]) == 0
    fast = by_id["replicate/wan-2.2-t2v-fast"]
    assert truth.outages(fast) == ((1.5 * 86400, 1.5 * 86400 + 6 * 3600),) and not truth.outages(by_id["veo/veo-3.0"])
    # Every policy and the optimum get the catalog priced on the scenario's basis.
    full = {o.id: o for o in scenario.offers(OFFERS)}["local/wan21-14b"].price_for(832, 480, 5)
    marginal = {o.id: o for o in with_local_cost_basis(OFFERS, "marginal")}["local/wan21-14b"].price_for(832, 480, 5)
    assert full is not None and marginal is not None and full[1] > marginal[1] > 0


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_shipped_scenario_parses(path: Path) -> None:
    scenario = load_scenario(path, OFFERS)
    assert scenario.description and scenario.arrivals()


def test_hvr_simulate_runs_a_scenario_and_refuses_a_bad_one(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "w.jsonl"
    workload.save(workload.generate(40, seed=9, start=MONDAY.replace(hour=0), days=10), work)
    good = tmp_path / "good.yaml"
    good.write_text(f"seed: 9\nworkload: {{file: {work}}}\ntruth:\n  time_bias: {{local: 0.05}}\n"
                    "  outages: [{provider: veo, from_day: 2, hours: 24}]\nlocal_cost_basis: marginal\n")
    out = tmp_path / "r.json"
    assert simulate_cli(["--scenario", str(good), "--json", str(out), "--policies", "hvr", "cheapest_feasible",
                         "offline_optimum"]) == 0
    document = json.loads(out.read_text())
    assert document["seed"] == 9 and "scenario good.yaml" in document["workload"]
    for figures in document["policies"].values():
        assert "gpu_utilization" in figures and "second_half_cost_ratio_to_optimum" in figures
        assert [w["week"] for w in figures["weekly"]] == [0, 1]
    assert {"second_half_cost_ratio_to_optimum", "gpu_utilization_share_of_optimum"} <= set(document["targets"])
    assert document["targets"]["cost_ratio_to_optimum"]["target"] == 1.15
    capsys.readouterr()
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 9\ntruth:\n  time_bias: {locl: 0.05}\n")
    assert simulate_cli(["--scenario", str(bad)]) == 1
    assert capsys.readouterr().err.startswith(f"hvr simulate: {bad}:3: truth.time_bias.locl: ")
    assert simulate_cli(["--scenario", str(good), "--seed", "3", "--budget", "5"]) == 2
    assert "drop --seed, --budget" in capsys.readouterr().err


# --- outages -----------------------------------------------------------------------------------------------------


def _overlaps(start: float, end: float, outages: tuple[tuple[float, float], ...]) -> bool:
    return any(start < b - 1e-6 and end > a + 1e-6 for a, b in outages)


@pytest.mark.parametrize("policy", list(baselines.POLICIES))
def test_nothing_runs_where_a_provider_is_down(policy: str) -> None:
    down = (Outage("veo", 0.5, 10), Outage("local", 1.0, 6), Outage("replicate/wan-2.2-t2v-fast", 0.3, 12))
    truth = Truth(TruthConfig(seed=3, outages=down))
    run = simulate(busy_days(3), OFFERS, baselines.make(policy, OFFERS), truth)
    hit = 0
    for job in run.jobs:
        assert job.terminal
        for a in job.attempts:
            if a.started_at is not None:
                assert not _overlaps(a.started_at, a.started_at + a.gpu_seconds, truth.outages(a.offer)), a
            if a.started_at is None and a.status == "failed":  # refused at submit, or dequeued as it went down
                assert a.cost == 0 and a.ended_at is not None
                assert truth.down(a.offer, a.routed_at) or any(start == a.ended_at for start, _ in
                                                                truth.outages(a.offer))
                hit += truth.down(a.offer, a.routed_at)
            if policy in ("hvr", "cheapest_feasible", "local_only"):
                assert not truth.down(a.offer, a.routed_at), a  # the health probe steers the engine away
    if policy in ("always_veo", "static_rule"):
        assert hit > 0  # the static rules don't look at health: they meet the outage head on


def test_outages_bind_the_optimum() -> None:
    """Outages only take away: the optimum costs at least as much and serves no more, no cloud render of it spans
    its offer's outage, and its local work (EDF around the outage) never falls in the GPU's."""
    arrivals = contended()
    flags = infeasible_flags(arrivals, OFFERS)
    free = optimal.Problem.of(arrivals, OFFERS, Truth(TruthConfig(seed=1)), flags).solve(gap=0.0)
    local_down = (9 * 3600 + 30 * 60, 11 * 3600)  # the GPU down 9:30-11:00 on the day the drafts arrive
    down = (Outage("local", local_down[0] / 86400, 1.5), Outage("replicate", 0.0, 9.75), Outage("runpod", 0.0, 11))
    truth = Truth(TruthConfig(seed=1, outages=down))
    problem = optimal.Problem.of(arrivals, OFFERS, truth, infeasible_flags(arrivals, OFFERS, truth))
    bound = problem.solve(gap=0.0)
    assert len(bound.served) < len(free.served) or bound.cost > free.cost
    by_id = {o.id: o for o in OFFERS}
    for c in bound.served.values():
        if not c.local:
            begin = problem.arrival_t[c.request] + c.ready_s - c.render_s - by_id[c.offer].latency.transfer_s
            assert not _overlaps(begin, begin + c.render_s, truth.outages(by_id[c.offer]))
    comparison = compare(arrivals, OFFERS, seed=1, truth_config=truth.config)
    best = comparison.metrics[OPTIMUM]
    assert best.busy and not any(_overlaps(a, b, (local_down,)) for a, b in best.busy)
    for name, m in comparison.metrics.items():  # the bound still bounds every policy living through them
        if name != OPTIMUM:
            assert m.matched_bound_usd is not None and m.matched_bound_usd <= m.total_cost_usd, name


# --- week by week, and the second half ---------------------------------------------------------------------------


def test_weekly_and_second_half_figures_add_up() -> None:
    arrivals = workload.generate(70, seed=12, start=MONDAY.replace(hour=0), days=17)
    truth = TruthConfig(seed=12, time_bias={"local": 0.05})
    comparison = compare(arrivals, OFFERS, seed=12, policies=["hvr", "cheapest_feasible", OPTIMUM],
                         truth_config=truth, matched_bounds=False)
    start, horizon = comparison.start, comparison.horizon_s
    arrival_t = [(a.at - start).total_seconds() for a in arrivals]
    best = comparison.metrics[OPTIMUM]
    late = [i for i, t in enumerate(arrival_t) if t >= horizon / 2]
    for name, m in comparison.metrics.items():
        assert len(m.weekly) == -(-horizon // (7 * 86400)) == 3, name
        assert sum((w.cost_usd for w in m.weekly), m.infeasible_cost_usd) == m.total_cost_usd
        assert sum((w.optimum_cost_usd for w in m.weekly), Decimal(0)) == best.total_cost_usd
        lengths = [min(7 * 86400.0, horizon - w.week * 7 * 86400) for w in m.weekly]
        assert sum(w.gpu_utilization * n for w, n in zip(m.weekly, lengths, strict=True)) == pytest.approx(
            m.gpu_utilization * horizon, rel=1e-6, abs=1e-6)
        feasible = [[i for i, t in enumerate(arrival_t) if min(int(t // (7 * 86400)), 2) == w.week
                     and not comparison.runs[name].jobs[i].infeasible] for w in m.weekly] \
            if name != OPTIMUM else None
        if feasible is not None:
            on_time = sum((w.deadline_hit_rate or 0) * len(f) for w, f in zip(m.weekly, feasible, strict=True))
            assert on_time == pytest.approx(m.on_time)
        mine = sum((m.cost_by_request[i] for i in late if not comparison.runs[name].jobs[i].infeasible)
                   if name != OPTIMUM else (m.cost_by_request[i] for i in late), Decimal(0))
        theirs = sum((best.cost_by_request[i] for i in late), Decimal(0))
        assert m.second_half_cost_usd == mine and m.second_half_optimum_usd == theirs
        assert m.second_half_cost_ratio_to_optimum == pytest.approx(float(mine / theirs))
    assert all(w.cost_ratio_to_optimum in (None, 1.0) for w in best.weekly)
    assert best.second_half_cost_ratio_to_optimum == 1.0


# --- learning in the loop ----------------------------------------------------------------------------------------


def test_hvr_learns_in_the_loop_and_the_baselines_do_not() -> None:
    truth = Truth(TruthConfig(seed=2, time_bias={"local": 0.05}))
    run = simulate(busy_days(2, 80), OFFERS, baselines.make("hvr", OFFERS, seed=2), truth)
    rendered = [a for j in run.jobs for a in j.attempts if a.offer.id == "local/animatediff-sd15" and a.render_s]
    learned = run.learned["local/animatediff-sd15"]
    assert 5 <= learned.runs <= len(rendered)
    assert 0.05 / 2 < learned.time_p50 < 0.05 * 2  # most of the way from the catalog's 1.0 to the truth's 0.05
    assert all(name in {o.id for o in OFFERS} for name in run.learned)
    blind = simulate(busy_days(2, 80), OFFERS, baselines.make("cheapest_feasible", OFFERS), truth)
    assert blind.learned == {}
    again = simulate(busy_days(2, 80), OFFERS, baselines.make("hvr", OFFERS, seed=2), truth)
    assert [(j.status, j.cost) for j in again.jobs] == [(j.status, j.cost) for j in run.jobs]


# --- exploration in the loop -------------------------------------------------------------------------------------


def test_hvr_explores_in_the_sim_and_repeats_from_its_seed() -> None:
    truth = Truth(TruthConfig(seed=2, time_bias={"local": 0.05}))
    run = simulate(busy_days(2, 80), OFFERS, baselines.make("hvr", OFFERS, seed=2), truth)
    explored = [(j.key, a.n, a.offer.id, a.explore_until) for j in run.jobs for a in j.attempts
                if a.explore_until is not None]
    assert explored and all(offer.startswith("local/") for _, _, offer, _ in explored)
    assert all(sum(a.explore_until is not None for a in j.attempts) <= 1 for j in run.jobs)  # a job explores once
    again = simulate(busy_days(2, 80), OFFERS, baselines.make("hvr", OFFERS, seed=2), truth)
    assert [(j.key, a.n, a.offer.id, a.explore_until) for j in again.jobs for a in j.attempts
            if a.explore_until is not None] == explored
    assert [(j.status, j.cost) for j in again.jobs] == [(j.status, j.cost) for j in run.jobs]
    # The draw is the run's seed and the request's: as production's per job, it doesn't depend on what came before.
    hvr = baselines.make("hvr", OFFERS, seed=2)
    assert hvr.exploration(5, 0, Decimal(0)) == baselines.make("hvr", OFFERS, seed=2).exploration(5, 0, Decimal(0))
    spent = hvr.exploration(5, baselines.production_limits().jobs_per_day, Decimal(0))
    assert spent is None or not spent.open  # today's cap spent: no more tries


def test_an_abandoned_exploration_frees_the_gpu_at_its_abandon_point_and_the_job_keeps_its_deadline() -> None:
    # The GPU is 3x slower than its catalog: the optimistic try can't finish before its abandon point.
    truth = Truth(TruthConfig(seed=1, time_bias={"local": 3.0}))
    first = arrival(0, resolution="480p", duration_s=5, deadline_s=6 * 3600, quality="draft")
    queued = arrival(30, resolution="512x512", aspect_ratio="1:1", duration_s=3.5, deadline_s=24 * 3600,
                     quality="draft")
    run = simulate([first, queued], OFFERS, baselines.make("hvr", OFFERS, seed=1), truth)
    job, other = run.jobs
    tried, fallback = job.attempts
    assert tried.offer.provider is ProviderKind.LOCAL and tried.explore_until is not None
    assert tried.status == "failed" and tried.reason is not None
    assert tried.reason.code is AttemptCode.EXPLORATION_ABANDONED
    assert tried.ended_at == tried.explore_until and tried.started_at is not None
    assert tried.gpu_seconds == pytest.approx(tried.explore_until - tried.started_at)  # billed what it ran
    assert tried.cost > 0
    assert fallback.offer.id != tried.offer.id and fallback.routed_at == tried.explore_until
    assert job.on_time
    # The slot is free at the abandon point: the job queued behind the try starts there.
    assert other.attempts[0].offer.provider is ProviderKind.LOCAL
    assert other.attempts[0].started_at == tried.explore_until and other.on_time
    assert run.local_busy_s == pytest.approx(tried.gpu_seconds + other.attempts[0].gpu_seconds)
    learned = run.learned[tried.offer.id]
    spec = tried.delivered
    assert spec is not None
    catalog_s = tried.offer.latency.compute_seconds(spec.width, spec.height, spec.frames, p90=False)
    # A lower bound, no run: what it ran over the catalog's time (stopped once it could no longer win).
    assert learned.runs == 0 and learned.time_floor == pytest.approx(tried.gpu_seconds / catalog_s, rel=1e-3)


@pytest.mark.parametrize("policy", [p for p in baselines.POLICIES if p != "hvr"])
def test_baselines_never_explore(policy: str) -> None:
    truth = Truth(TruthConfig(seed=2, time_bias={"local": 0.05}))
    chosen = baselines.make(policy, OFFERS, seed=2)
    assert all(chosen.exploration(key, 0, Decimal(0)) is None for key in range(50))
    run = simulate(busy_days(2, 80), OFFERS, chosen, truth)
    assert not any(a.explore_until is not None for j in run.jobs for a in j.attempts)


def test_the_sim_explores_with_the_deployments_defaults() -> None:
    from router.policy.exploration import Limits
    from router.settings import Settings

    limits = baselines.production_limits()
    fields = Settings.model_fields
    assert (limits.share, limits.jobs_per_day, limits.usd_per_day, limits.margin_s) == (
        fields["exploration_share"].default, fields["exploration_jobs_per_day"].default,
        fields["exploration_usd_per_day"].default, fields["exploration_margin_s"].default)
    assert (limits.z, limits.min_runs) == (Limits().z, Limits().min_runs)
