"""Learned offer models (router.policy.learning): the issue's targets as unit and property tests.

Times are factors against the catalog's p50 for the same delivery, so "truth" is a factor: 0.05 is a GPU twenty
times faster than the catalog says. Noise is bounded in log space (a render's spread around its model).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import asdict
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from router.models.decision import DeliveredSpec
from router.policy.catalog import load_catalog
from router.policy.constraints import estimate
from router.policy.context import TargetState
from router.policy.learning import (
    CATALOG,
    MIN_P90_RATIO,
    WINDOW,
    Observation,
    OfferStats,
    group,
    key,
    observe,
    optimistic,
    read,
    sample_time,
    snapshot,
)

NOW = datetime(2026, 12, 4, tzinfo=UTC)
OFFERS = {o.id: o for o in load_catalog().offers}
SPEC_720 = DeliveredSpec(width=1280, height=720, frames=81, fps=16)
CATALOG_S = 2420.0  # AnimateDiff, 16 frames at 512x512: the catalog's p50


def run(factor: float) -> Observation:
    return Observation(ok=True, render_s=CATALOG_S * factor, catalog_render_s=CATALOG_S)


def feed(stats: OfferStats, factors: list[float]) -> OfferStats:
    for factor in factors:
        stats = observe(stats, run(factor))
    return stats


def p50(stats: OfferStats) -> float:
    return read(stats).time_p50


levels = st.floats(min_value=math.log(1e-3), max_value=math.log(1e3))  # log truth: catalog off by up to 1000x
noise = st.lists(st.floats(min_value=-0.15, max_value=0.15), min_size=WINDOW * 3, max_size=WINDOW * 3)


# --- the three targets -------------------------------------------------------------------------------------


def test_five_runs_at_a_twentieth_of_the_prior_land_within_2x() -> None:
    rng = random.Random(7)
    stats = feed(OfferStats(), [0.05 * rng.lognormvariate(0, 0.15) for _ in range(5)])
    assert 0.5 < p50(stats) / 0.05 < 2.0
    assert read(stats).runs == 5


@given(level=levels, jitter=noise)
def test_five_runs_move_any_prior_within_2x_of_the_truth(level: float, jitter: list[float]) -> None:
    truth = math.exp(level)
    stats = feed(OfferStats(), [truth * math.exp(j) for j in jitter[:5]])
    assert 0.5 < p50(stats) / truth < 2.0


@given(level=levels, jitter=noise, history=st.integers(min_value=5, max_value=30), up=st.booleans())
def test_one_10x_outlier_after_five_runs_moves_p50_less_than_1_5x(level: float, jitter: list[float], history: int,
                                                                  up: bool) -> None:
    truth = math.exp(level)
    before = feed(OfferStats(), [truth * math.exp(j) for j in jitter[:history]])
    after = observe(before, run(truth * (10 if up else 0.1)))
    assert abs(math.log(p50(after) / p50(before))) < math.log(1.5)


@given(level=levels, jitter=noise, history=st.integers(min_value=0, max_value=24), up=st.booleans())
def test_a_lasting_2x_change_is_followed_within_25_percent_by_run_ten(level: float, jitter: list[float], history: int,
                                                                       up: bool) -> None:
    old = math.exp(level)
    new = old * (2 if up else 0.5)
    stats = feed(OfferStats(), [old * math.exp(j) for j in jitter[:history]])
    stats = feed(stats, [new * math.exp(j) for j in jitter[history:history + 10]])
    assert abs(p50(stats) / new - 1) < 0.25


# --- convergence and monotonicity ----------------------------------------------------------------------------


@given(level=levels, jitter=noise)
def test_converges_from_a_wrong_prior(level: float, jitter: list[float]) -> None:
    truth = math.exp(level)
    stats = feed(OfferStats(), [truth * math.exp(j) for j in jitter])
    assert abs(math.log(p50(stats) / truth)) <= 0.15 + 1e-4  # within the noise, however wrong the catalog was


@given(level=levels, runs=st.integers(min_value=1, max_value=3 * WINDOW))
def test_monotone_in_evidence(level: float, runs: int) -> None:
    """Consistent runs move the estimate towards them and never past; each one makes it surer."""
    truth = math.exp(level)
    stats, errors, spreads = OfferStats(), [abs(level)], [read(OfferStats()).log_sd]
    for _ in range(runs):
        stats = observe(stats, run(truth))
        errors.append(abs(math.log(p50(stats)) - level))
        spreads.append(read(stats).log_sd)
        assert min(0.0, level) - 1e-4 <= math.log(p50(stats)) <= max(0.0, level) + 1e-4  # logs are kept to 1e-4
    assert all(later <= earlier + 1e-4 for earlier, later in itertools.pairwise(errors))
    assert all(later <= earlier + 1e-9 for earlier, later in itertools.pairwise(spreads))


def test_no_clamp_a_hundredfold_error_is_corrected() -> None:
    assert math.isclose(p50(feed(OfferStats(), [0.01] * 3)), 0.01, rel_tol=1e-4)
    assert math.isclose(p50(feed(OfferStats(), [100.0] * 3)), 100.0, rel_tol=1e-4)


def test_one_run_meets_the_catalog_halfway_in_log_space() -> None:
    assert math.isclose(p50(feed(OfferStats(), [0.04])), 0.2, rel_tol=1e-4)


def test_the_window_is_bounded() -> None:
    stats = feed(OfferStats(), [0.5] * 50)
    assert len(stats.times) == WINDOW and stats.runs == 50 and read(stats).runs == 50


# --- p90 and uncertainty -------------------------------------------------------------------------------------


def test_p90_is_the_catalogs_own_until_five_runs_then_measured() -> None:
    rng = random.Random(3)
    stats = feed(OfferStats(), [0.05 * rng.lognormvariate(0, 0.3) for _ in range(4)])
    assert read(stats).time_p90 is None  # the engine uses the catalog's p90/p50 for the delivery
    stats = feed(stats, [0.05 * rng.lognormvariate(0, 0.3) for _ in range(8)])
    learned = read(stats)
    assert learned.time_p90 is not None and learned.time_p90 > learned.time_p50 * 1.2


def test_identical_runs_still_leave_a_p90_margin() -> None:
    learned = read(feed(OfferStats(), [0.05] * 12))
    assert learned.time_p90 is not None and math.isclose(learned.time_p90, 0.05 * MIN_P90_RATIO, rel_tol=1e-4)


def test_uncertainty_for_exploration() -> None:
    untested, tested = read(OfferStats()), read(feed(OfferStats(), [1.0] * 12))
    assert optimistic(untested) < 0.25 < optimistic(tested) < 1.0  # the catalog alone can't rule out 4 times faster
    draws = [sample_time(untested, random.Random(seed)) for seed in range(200)]
    assert draws == [sample_time(untested, random.Random(seed)) for seed in range(200)]  # seeded: repeatable
    assert min(draws) < 0.2 and max(draws) > 5
    narrow = [sample_time(tested, random.Random(seed)) for seed in range(200)]
    assert min(narrow) > 0.9 and max(narrow) < 1.1


# --- cost, failures, start delays ----------------------------------------------------------------------------


def test_cost_factor_is_a_robust_median_of_billed_over_priced() -> None:
    stats = OfferStats()
    for billed in (1.3, 1.3, 1.3, 13.0):
        stats = observe(stats, Observation(ok=True, billed_usd=billed, priced_usd=1.0))
    learned = read(stats)
    assert learned.cost == 1.3 and str(learned.cost_decimal) == "1.3000"
    assert read(OfferStats()).cost == 1.0


def test_failure_rate_starts_at_a_few_percent_and_follows_change() -> None:
    assert 0.02 < read(OfferStats()).failure_rate < 0.05
    flaky = OfferStats()
    for i in range(30):
        flaky = observe(flaky, Observation(ok=i % 3 != 0))  # a third fail
    assert 0.25 < read(flaky).failure_rate < 0.4
    healed = flaky
    for _ in range(60):
        healed = observe(healed, Observation(ok=True))
    assert read(healed).failure_rate < 0.05 and read(healed).attempts == 90


def test_a_failure_teaches_nothing_about_time() -> None:
    stats = observe(OfferStats(), Observation(ok=False, render_s=5.0, catalog_render_s=100.0))
    assert stats.times == () and stats.runs == 0 and stats.attempts == 1


def test_start_delays_split_into_cold_starts_and_warm_pickups() -> None:
    stats = OfferStats()
    for delay in (1.0, 40.0, 1.5, 35.0, 0.8):  # catalog says 150 s cold; this endpoint starts in ~40 s
        stats = observe(stats, Observation(ok=True, start_delay_s=delay, cold_start_prior_s=150.0))
    learned = read(stats)
    assert learned.cold_start_s == 37.5 and learned.queue_wait_s == 1.0
    told = observe(observe(OfferStats(), Observation(ok=True, start_delay_s=3.0, cold=True)),
                   Observation(ok=True, start_delay_s=5.0, cold=True))
    assert read(told).cold_start_s == 4.0 and read(told).queue_wait_s is None
    assert read(OfferStats()).cold_start_s is None  # the catalog's stands


@given(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
       st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)))
def test_unusable_figures_are_skipped(render_s: float | None, catalog_s: float | None) -> None:
    stats = observe(OfferStats(), Observation(ok=True, render_s=render_s, catalog_render_s=catalog_s,
                                              billed_usd=render_s, priced_usd=catalog_s, start_delay_s=render_s))
    learned = read(stats)
    assert math.isfinite(learned.time_p50) and learned.time_p50 > 0 and math.isfinite(learned.cost)
    cold = TargetState(name="runpod", warm=False)
    assert estimate(OFFERS["runpod/wan22-14b-comfy"], SPEC_720, cold, learned, NOW) is not None


# --- keys and snapshots --------------------------------------------------------------------------------------


def test_keys_and_snapshot() -> None:
    assert key("local/wan21-1.3b") == "local/wan21-1.3b"
    assert key("local/wan21-1.3b", "agent-2") == "local/wan21-1.3b@agent-2"
    assert snapshot({"a": OfferStats()}) == {"a": CATALOG}


@settings(max_examples=50)
@given(st.lists(st.floats(min_value=0.001, max_value=1000), max_size=30))
def test_state_stays_small(factors: list[float]) -> None:
    stats = feed(OfferStats(), factors)
    assert len(str(asdict(stats))) < 600  # DynamoDB keeps it; every routing context reads every key's


# --- what the engine makes of it ------------------------------------------------------------------------------


def test_the_engine_scales_the_catalogs_latency_model_by_what_was_learned() -> None:
    now, offers = NOW, OFFERS
    local = offers["local/wan21-1.3b"]
    spec = DeliveredSpec(width=832, height=480, frames=81, fps=16)
    catalog = estimate(local, spec, None, None, now)
    fast = estimate(local, spec, None, read(feed(OfferStats(), [0.05] * 12)), now)
    assert catalog is not None and fast is not None
    assert math.isclose(fast.compute_p50_s, catalog.compute_p50_s * 0.05, rel_tol=1e-3)
    assert math.isclose(fast.compute_p90_s, fast.compute_p50_s * MIN_P90_RATIO, rel_tol=1e-3)
    assert fast.cost_p50 < catalog.cost_p50 / 10

    comfy = offers["runpod/wan22-14b-comfy"]
    cold = TargetState(name="runpod", warm=False)
    starts = OfferStats()
    for delay in (30.0, 34.0, 1.0, 1.0):
        starts = observe(starts, Observation(ok=True, start_delay_s=delay,
                                             cold_start_prior_s=comfy.latency.cold_start_s))
    spec = SPEC_720
    before, after = estimate(comfy, spec, cold, None, now), estimate(comfy, spec, cold, read(starts), now)
    assert before is not None and after is not None
    saved = (before.ready_p90 - after.ready_p90).total_seconds()
    # The learned cold start (32 s) replaces the catalog's; the learned warm pickup (1 s) is a floor on the wait.
    assert math.isclose(saved, comfy.latency.cold_start_s - 32.0 - 1.0, abs_tol=0.01)
    assert after.cost_p90 < before.cost_p90  # a serverless cold start is billed; a shorter one costs less


# --- renders stopped unfinished (censored) ------------------------------------------------------------------


def censored(factor: float) -> Observation:
    return Observation(ok=True, render_s=CATALOG_S * factor, catalog_render_s=CATALOG_S, censored=True)


def test_a_stopped_render_is_a_lower_bound_not_a_run() -> None:
    stats = observe(OfferStats(), censored(0.3))
    learned = read(stats)
    assert stats.runs == 0 and stats.attempts == 0 and stats.times == ()  # neither a run nor a failure
    assert learned.time_p50 == 1.0  # below the median (the catalog): the estimate doesn't move
    assert learned.time_floor is not None and math.isclose(learned.time_floor, 0.3, rel_tol=1e-3)
    assert optimistic(learned, 3.0) >= learned.time_floor  # optimism can't hope below what was proved


def test_a_bound_above_the_median_moves_the_estimate_up_only() -> None:
    fast = feed(OfferStats(), [0.05, 0.05])
    assert p50(fast) < 0.06
    stopped = observe(fast, censored(0.2))
    assert math.isclose(p50(stopped), 0.2, rel_tol=1e-3)  # it took at least that: never less
    assert p50(observe(fast, censored(0.01))) == p50(fast)  # a bound below the median says nothing new


def test_a_finished_run_faster_than_a_bound_drops_it() -> None:
    stopped = observe(OfferStats(), censored(2.0))
    assert math.isclose(p50(stopped), 2.0, rel_tol=1e-3)
    after = observe(stopped, run(0.05))  # a new driver, say: what was measured since wins
    assert after.floors == () and read(after).time_floor is None and p50(after) < 1.0
    kept = observe(observe(OfferStats(), censored(0.02)), run(0.05))
    assert kept.floors != ()  # a bound below the finished run is still true


def test_bounds_are_few() -> None:
    stats = OfferStats()
    for factor in (0.1, 0.2, 0.3, 0.4, 0.5):
        stats = observe(stats, censored(factor))
    assert len(stats.floors) == 3 and math.isclose(read(stats).time_floor or 0.0, 0.5, rel_tol=1e-3)


# --- offers that share hardware share a prior -----------------------------------------------------------------


def test_an_untried_offer_starts_from_its_groups_runs() -> None:
    fast = feed(OfferStats(), [0.02] * 3)
    one = snapshot({"local/wan21-14b": fast}, ["local/wan22-5b-ti2v", "replicate/wan-2.2-t2v-fast"])
    # One sibling measured: the catalog's vote and its meet halfway, in log space, as one run of its own would.
    assert math.isclose(one["local/wan22-5b-ti2v"].time_p50, math.sqrt(0.02), rel_tol=1e-3)
    assert one["local/wan22-5b-ti2v"].runs == 0 and one["local/wan22-5b-ti2v"].group_runs == 3
    # Another provider's offers are other hardware: untouched, so no entry (the engine reads the catalog).
    assert "replicate/wan-2.2-t2v-fast" not in one
    two = snapshot({"local/wan21-14b": fast, "local/animatediff-sd15": feed(OfferStats(), [0.03] * 2)},
                   ["local/wan22-5b-ti2v"])
    untried = two["local/wan22-5b-ti2v"]
    assert 0.02 <= untried.time_p50 <= 0.03 and untried.group_runs == 5 and untried.runs == 0
    assert untried.log_sd == CATALOG.log_sd  # siblings may still differ: exploration stays as open as before
    # The siblings are not their own group's evidence twice: each one's prior is the other's.
    assert 0.02 <= two["local/wan21-14b"].time_p50 < 0.03


def test_own_runs_outvote_the_group_as_they_outvote_the_catalog() -> None:
    stats = {"local/wan21-14b": feed(OfferStats(), [0.02] * 5),
             "local/animatediff-sd15": feed(OfferStats(), [1.0] * 2)}
    assert math.isclose(snapshot(stats)["local/animatediff-sd15"].time_p50, 1.0, rel_tol=1e-6)
    alone = snapshot({"local/animatediff-sd15": stats["local/animatediff-sd15"]})
    assert alone["local/animatediff-sd15"].group_runs == 0 and alone["local/animatediff-sd15"].group_time == 1.0


def test_groups_are_targets_for_per_target_keys_and_providers_otherwise() -> None:
    assert group(key("local/wan21-14b", "box-2")) == "@box-2"
    assert group("local/wan21-14b") == "local" and group("replicate/wan-2.2-t2v-fast") is None
    cloud = snapshot({"replicate/wan-2.2-s2v": feed(OfferStats(), [3.0] * 3)}, ["replicate/wan-2.2-t2v-fast"])
    assert "replicate/wan-2.2-t2v-fast" not in cloud  # a slow cloud model says nothing of its provider's others
    stats = {key("local/wan21-14b", "box-2"): feed(OfferStats(), [0.02] * 3)}
    pooled = snapshot(stats, [key("local/wan22-5b-ti2v", "box-2"), "local/wan22-5b-ti2v"])
    assert key("local/wan22-5b-ti2v", "box-2") in pooled and "local/wan22-5b-ti2v" not in pooled


def test_a_failed_or_stopped_sibling_moves_no_prior() -> None:
    stopped = observe(observe(OfferStats(), Observation(ok=False)),
                      Observation(ok=True, render_s=100.0, catalog_render_s=CATALOG_S, censored=True))
    assert snapshot({"local/wan21-14b": stopped}, ["local/wan22-5b-ti2v"]).get("local/wan22-5b-ti2v") is None


def test_a_slow_box_is_priced_slow_for_a_model_only_the_fast_box_has_run() -> None:
    """Each box of a fleet keeps its own model of an offer (`offer@box`) beside the fleet's; a box that has never run
    an offer gets the fleet's figure times how much longer that box renders the offers it has run."""
    wan, animatediff = "local/wan21-14b", "local/animatediff-sd15"
    stats = {
        animatediff: feed(OfferStats(), [0.1] * 3 + [0.2] * 3),  # both boxes ran it: the fleet's is both
        key(animatediff, "5090"): feed(OfferStats(), [0.1] * 3),
        key(animatediff, "3090"): feed(OfferStats(), [0.2] * 3),
        wan: feed(OfferStats(), [0.05] * 3),  # only the 5090 ran it
        key(wan, "5090"): feed(OfferStats(), [0.05] * 3),
    }
    found = snapshot(stats, OFFERS, {"5090": [wan, animatediff], "3090": [wan, animatediff], "4090": [wan]})
    assert math.isclose(found[key(wan, "5090")].time_p50, 0.05, rel_tol=1e-3)  # its own runs
    # The 3090 takes 2x the 5090 on AnimateDiff, so about √2 the fleet's (the fleet's median sits between them).
    assert math.isclose(found[key(wan, "3090")].time_p50 / found[wan].time_p50, math.sqrt(2), rel_tol=0.02)
    assert found[key(wan, "3090")].time_p50 > 1.3 * found[key(wan, "5090")].time_p50
    # A prior for the 3090, not its measurement: it has no runs of WAN, so exploration may still measure it there.
    assert found[key(wan, "3090")].runs == 0 and found[key(wan, "3090")].group_runs == found[wan].runs == 3
    assert key(wan, "4090") not in found  # a box that ran nothing: the engine takes the fleet's figure
