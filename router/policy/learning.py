"""Learned offer models: what each offer really does, learned from its attempts, with the catalog as the prior.

Pure and stdlib only: finalize (a Lambda) and the simulator feed the same `observe`, and the engine reads `read`'s
summary from its context snapshot. A model belongs to a key: the offer id, or `offer@target` where one offer runs on
several targets (`key`).

Time is learned as the ratio of a render's measured seconds to the catalog's own p50 for the same delivery
(`Latency.compute_seconds`: overhead plus seconds per frame scaled by pixels), so one factor covers every size and
length. The estimate is the median, in log space, of the last `WINDOW` ratios plus the catalog as one
pseudo-observation at 1.0: two consistent runs outvote the catalog however wrong it was, one outlier moves the
median by one rank at most, and a lasting change owns the window's majority after seven runs. There is no clamp.
Cost is learned the same way, as what an attempt was billed over what the catalog's price makes of the same billed
units (the time error is the time factor's, never counted twice). Failures are a Beta prior of a few percent,
updated per attempt with counts that decay so the rate follows change. Start delays (RunPod's `delayTime`) are
medians of recent cold starts and of recent warm starts.

The uncertainty (`log_sd`, for exploration) narrows with each run, but never below the gap between the estimate
and the runs' own median: one run 20 times faster than the catalog leaves the estimate halfway, and as unsure as
that, so the offer is still worth a second look.

Offers that share hardware share its error: the studio's GPU is as much faster than the catalog for one model as
for the next. So the catalog's pseudo-observation for an offer is not 1.0 but its group's prior (`snapshot`): the
median, in log space, of the catalog (one vote again) and the run medians of the group's other offers — the local
GPU's offers, or an `offer@target` key's target's (`group`; cloud offers are not pooled). Two siblings measured 50
times faster than the catalog move an untried offer there at once; one moves it halfway; its own runs outvote the
group as they outvote the catalog.

A render stopped unfinished (an exploring attempt abandoned at its abandon point) is censored: it took at least the
seconds it ran. It is kept apart, as a lower bound, not as a run: the estimate never sits below the highest recent
bound, so it only ever moves up, and only when the bound is above the median; and `optimistic` never goes below it,
so an offer that was too slow to explore is not tried again on a window it could not fill. A finished run faster
than a bound drops that bound: what was measured since wins.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal

WINDOW = 12  # recent time ratios kept: enough for a robust median and spread, few enough to follow a change
COST_WINDOW = 6
DELAY_WINDOW = 6
FLOOR_WINDOW = 3  # recent censored renders kept as lower bounds
MIN_SPREAD_RUNS = 5  # fewer runs than this: p90/p50 is the catalog's own
MIN_DELAY_RUNS = 2  # one start delay is an anecdote; the catalog's cold start stands until there are two
MIN_P90_RATIO = 1.1  # a learned p90 never sits closer than 10 % above the p50: a dozen runs can't prove less
Z90 = 1.2816  # standard normal quantile of 0.9
MAD_TO_SD = 1.4826  # median absolute deviation → standard deviation, for a normal spread
# How wrong a catalog time may be, as a log-normal sd: ten times off is about two sd (the studio's own GPU figures
# are 10-100 times slow). Only the uncertainty measure uses it; the estimate gives the catalog one run's weight.
PRIOR_LOG_SD = math.log(10) / 2
NOISE_LOG_SD = 0.25  # run-to-run spread assumed until MIN_SPREAD_RUNS runs measure it
# Failure rate per attempt: Beta(0.15, 4.85), 3 % worth five attempts; counts decay 3 % an attempt, so about the last
# 33 attempts speak and the prior never outweighs them more than one to six.
FAILURE_PRIOR = (0.15, 4.85)
FAILURE_DECAY = 0.97
LOCAL_GROUP = "local"  # the studio's GPU: every `local/` offer runs on it (one target today)
ABSURD_LOG_RATIO = math.log(1e6)  # a ratio further off either way is skipped as a unit or clock bug
MAX_DELAY_S = 86400.0  # a longer "start delay" is a stuck job or a clock bug
QUEUE_PRIOR_S = 2.0  # a warm worker's pickup, for telling warm starts from cold ones when the caller can't say


@dataclass(frozen=True, slots=True)
class Observation:
    """One attempt as finalize (or the simulator) saw it; fields it can't tell are None."""

    ok: bool  # the attempt delivered; False feeds only the failure rate
    render_s: float | None = None  # measured render seconds, in modelled time (billed GPU-seconds)
    catalog_render_s: float | None = None  # the catalog's p50 for the same delivery: what `render_s` is compared to
    billed_usd: float | None = None  # what the attempt cost
    priced_usd: float | None = None  # what the catalog's unit price makes of the same billed units
    start_delay_s: float | None = None  # seconds before a worker ran it: queue plus any cold start
    cold: bool | None = None  # whether that start was cold; None: the nearer of the two learned delays decides
    cold_start_prior_s: float = 0.0  # the catalog's cold start, for that decision before one is learned
    censored: bool = False  # stopped unfinished after `render_s`: a lower bound on its time, not a run


@dataclass(frozen=True, slots=True)
class OfferStats:
    """The stored state of one key. Small on purpose: DynamoDB keeps it and every routing context reads it."""

    runs: int = 0  # renders measured over the model's life: the evidence
    times: tuple[float, ...] = ()  # log(measured / catalog p50) of the last WINDOW renders, oldest first
    costs: tuple[float, ...] = ()  # log(billed / priced) of the last COST_WINDOW delivered attempts
    attempts: int = 0  # attempts seen, failed or not
    fails: float = 0.0  # decayed failures
    tries: float = 0.0  # decayed attempts
    colds: tuple[float, ...] = ()  # seconds of the last DELAY_WINDOW cold starts
    warms: tuple[float, ...] = ()  # seconds of the last DELAY_WINDOW warm starts
    floors: tuple[float, ...] = ()  # log(seconds run / catalog p50) of the last renders stopped unfinished


@dataclass(frozen=True, slots=True)
class Learned:
    """What the engine reads for an offer: factors against the catalog's figures, and how sure they are."""

    runs: int = 0
    attempts: int = 0
    time_p50: float = 1.0  # learned p50 render seconds / the catalog's p50 for the same delivery
    time_p90: float | None = None  # learned p90 / the catalog's p50; None: the catalog's own p90 times time_p50
    log_sd: float = PRIOR_LOG_SD  # uncertainty of log(time_p50), for exploration (`optimistic`, `sample_time`)
    cost: float = 1.0  # billed / catalog-priced
    cost_decimal: Decimal = Decimal(1)  # the same, as the engine multiplies money by it (made once per snapshot)
    failure_rate: float = FAILURE_PRIOR[0] / sum(FAILURE_PRIOR)
    cold_start_s: float | None = None  # None: the catalog's cold start
    queue_wait_s: float | None = None  # a warm start's typical delay; None: not measured
    time_floor: float | None = None  # a render stopped unfinished ran this long / the catalog's p50: a lower bound
    group_runs: int = 0  # runs of the offer's group (its other offers) behind the prior it starts from; 0: the catalog
    group_time: float = 1.0  # that prior, as a time factor


CATALOG = Learned()  # no evidence: every figure is the catalog's


def key(offer_id: str, target: str | None = None) -> str:
    """The key of a model: the offer, or the offer on one of several targets it runs on."""
    return f"{offer_id}@{target}" if target else offer_id


def group(name: str) -> str | None:
    """The hardware a key's offer shares with others: its target (`offer@target`), or the studio's GPU for a local
    offer; None for a cloud offer. A cloud provider's models run on hardware of their own, and a cloud offer is
    never explored, so a prior dragged down by a slow sibling would never be corrected."""
    offer_id, _, target = name.partition("@")
    if target:
        return f"@{target}"
    return LOCAL_GROUP if offer_id.startswith(f"{LOCAL_GROUP}/") else None


def observe(stats: OfferStats, obs: Observation) -> OfferStats:
    """`stats` after one more attempt. Unusable figures (missing, zero, negative, not finite) are skipped."""
    if obs.censored:
        # Neither a failure nor a finished render: it says only that the render takes at least this long.
        bound = _log_ratio(obs.render_s, obs.catalog_render_s)
        return stats if bound is None else replace(stats, floors=(*stats.floors, bound)[-FLOOR_WINDOW:])
    failed = 0.0 if obs.ok else 1.0
    stats = replace(stats, attempts=stats.attempts + 1, fails=round(stats.fails * FAILURE_DECAY + failed, 4),
                    tries=round(stats.tries * FAILURE_DECAY + 1.0, 4))
    if not obs.ok:
        return stats
    ratio = _log_ratio(obs.render_s, obs.catalog_render_s)
    if ratio is not None:
        stats = replace(stats, runs=stats.runs + 1, times=(*stats.times, ratio)[-WINDOW:],
                        floors=tuple(bound for bound in stats.floors if bound <= ratio))
    cost = _log_ratio(obs.billed_usd, obs.priced_usd)
    if cost is not None:
        stats = replace(stats, costs=(*stats.costs, cost)[-COST_WINDOW:])
    delay = obs.start_delay_s
    if delay is not None and 0 <= delay <= MAX_DELAY_S:
        cold = obs.cold if obs.cold is not None else _looks_cold(stats, delay, obs.cold_start_prior_s)
        if cold:
            stats = replace(stats, colds=(*stats.colds, round(delay, 1))[-DELAY_WINDOW:])
        else:
            stats = replace(stats, warms=(*stats.warms, round(delay, 1))[-DELAY_WINDOW:])
    return stats


def read(stats: OfferStats, prior: float = 0.0, group_runs: int = 0) -> Learned:
    """The estimate the engine uses: the catalog (moved to `prior`, the log time factor of the offer's group, from
    `group_runs` runs of its other offers), replaced by evidence as it accumulates."""
    center = _median((prior, *stats.times))
    floor = max(stats.floors, default=None)
    if floor is not None:
        center = max(center, floor)
    time_p90 = None
    noise = NOISE_LOG_SD
    if len(stats.times) >= MIN_SPREAD_RUNS:
        middle = _median(stats.times)
        noise = MAD_TO_SD * _median(tuple(abs(t - middle) for t in stats.times))
        time_p90 = math.exp(center + max(Z90 * noise, math.log(MIN_P90_RATIO)))
        noise = max(noise, 0.1)  # identical runs don't make the next one certain
    log_sd = 1 / math.sqrt(1 / PRIOR_LOG_SD**2 + len(stats.times) / noise**2)
    if stats.times:
        # While the catalog's vote holds the estimate away from the runs (one run: halfway), it is no surer than
        # that gap, up to the prior's own sd: else a GPU 20x faster than its catalog, explored once, sits 4.5x slow
        # with a narrow sd, its optimism can't win, and it is never tried again (docs/decisions.md, 2026-12-04).
        log_sd = max(log_sd, min(PRIOR_LOG_SD, abs(center - _median(stats.times))))
    cost = round(math.exp(_median((0.0, *stats.costs))), 4)
    alpha, beta = FAILURE_PRIOR
    return Learned(
        runs=stats.runs,
        attempts=stats.attempts,
        time_p50=math.exp(center),
        time_p90=time_p90,
        log_sd=log_sd,
        cost=cost,
        cost_decimal=Decimal(f"{cost:.4f}"),
        failure_rate=(alpha + stats.fails) / (alpha + beta + stats.tries),
        cold_start_s=_median(stats.colds) if len(stats.colds) >= MIN_DELAY_RUNS else None,
        queue_wait_s=_median(stats.warms) if len(stats.warms) >= MIN_DELAY_RUNS else None,
        time_floor=None if floor is None else math.exp(floor),
        group_runs=group_runs,
        group_time=math.exp(prior),
    )


def snapshot(stats: Mapping[str, OfferStats], offers: Iterable[str] = (),
             boxes: Mapping[str, Iterable[str]] | None = None) -> dict[str, Learned]:
    """Every key's estimate, read once per routing context (the engine then only looks them up); and one for each
    of `offers` (ids) with no model of its own whose group has runs: the group's prior. `boxes` (box name → the
    offer ids it may run) adds, for each pair with no runs of its own, the offer's fleet-wide estimate carried to
    that box by how much longer it renders than the fleet (`box_factors`)."""
    found = _snapshot(stats, offers)
    if boxes:
        factors = box_factors(stats)
        for box, box_offers in boxes.items():
            if (factor := factors.get(box)) is None:
                continue  # a box that hasn't run anything yet: the fleet's figures as they are
            for offer_id in box_offers:
                name = key(offer_id, box)
                if name not in found:
                    found[name] = on_box(found.get(offer_id, CATALOG), factor)
    return found


def box_factors(stats: Mapping[str, OfferStats]) -> dict[str, float]:
    """How much longer each box renders than its fleet, as a log time factor: the median, over the offers it has
    run, of its median time against the offer's fleet-wide one (every box's runs are the offer's too). A card is a
    constant factor across models far more than a model's speed is across cards, so one figure per box carries what
    the fleet learned about a model to a box that hasn't run it yet."""
    by_box: dict[str, list[float]] = {}
    for name, value in stats.items():
        offer_id, _, box = name.partition("@")
        fleet = stats.get(offer_id)
        if box and value.times and fleet is not None and fleet.times:
            by_box.setdefault(box, []).append(_median(value.times) - _median(fleet.times))
    return {box: _median(tuple(diffs)) for box, diffs in by_box.items()}


def on_box(learned: Learned, log_factor: float) -> Learned:
    """An offer's estimate on a box that renders exp(`log_factor`) times as long as its fleet. A prior, not a
    measurement: the box has no runs of it (the fleet's are its `group_runs`), so exploration still measures it."""
    scale = math.exp(log_factor)
    return replace(learned, runs=0, attempts=0, time_p50=learned.time_p50 * scale,
                   time_p90=None if learned.time_p90 is None else learned.time_p90 * scale,
                   time_floor=None if learned.time_floor is None else learned.time_floor * scale,
                   group_runs=learned.runs, group_time=learned.time_p50 * scale)


def _snapshot(stats: Mapping[str, OfferStats], offers: Iterable[str]) -> dict[str, Learned]:
    measured: dict[str, list[tuple[str, float, int]]] = {}
    for name, value in stats.items():
        if value.times and (shared := group(name)) is not None:
            measured.setdefault(shared, []).append((name, _median(value.times), value.runs))

    def prior(name: str) -> tuple[float, int]:
        shared = group(name)
        siblings = [(center, runs) for other, center, runs in measured.get(shared, ()) if other != name] \
            if shared is not None else []
        return _median((0.0, *(center for center, _ in siblings))), sum(runs for _, runs in siblings)

    found = {name: read(value, *prior(name)) for name, value in stats.items()}
    for name in offers:
        if name not in found and (start := prior(name))[1] > 0:
            found[name] = read(OfferStats(), *start)
    return found


def optimistic(learned: Learned, z: float = Z90) -> float:
    """A time factor the evidence can't yet rule out: `z` sd below the p50 (for optimism under uncertainty), and
    never below what a render stopped unfinished proved."""
    bound = math.exp(math.log(learned.time_p50) - z * learned.log_sd)
    return bound if learned.time_floor is None else max(bound, learned.time_floor)


def sample_time(learned: Learned, rng: random.Random) -> float:
    """A Thompson draw of the time factor from a seeded `rng`: wide before any run, narrow after a dozen."""
    return math.exp(rng.gauss(math.log(learned.time_p50), learned.log_sd))


def _log_ratio(measured: float | None, expected: float | None) -> float | None:
    if measured is None or expected is None or not (measured > 0 and expected > 0):
        return None
    if not (math.isfinite(measured) and math.isfinite(expected)):
        return None
    ratio = math.log(measured) - math.log(expected)
    return round(ratio, 4) if abs(ratio) <= ABSURD_LOG_RATIO else None


def _looks_cold(stats: OfferStats, delay_s: float, cold_prior_s: float) -> bool:
    """Nearer, in log space, to the learned (or catalog) cold start than to the learned (or typical) warm pickup."""
    cold = _median(stats.colds) if stats.colds else cold_prior_s
    warm = _median(stats.warms) if stats.warms else QUEUE_PRIOR_S
    if cold <= warm:
        return False
    return delay_s > math.sqrt(max(cold, 0.1) * max(warm, 0.1))


def _median(values: tuple[float, ...]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return 0.0
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
