"""Bounded exploration: an offer with little evidence may take a request on an optimistic estimate, with a fallback
kept in reserve (docs/decisions.md, 2026-12-04). Pure: the caller passes the draw and what is left of today's caps.

A catalog time that is too slow is never corrected unless the offer is tried, and an offer that looks slow is never
chosen. So, for a decision the caller drew to explore (`draw < share`, today's caps not spent), the engine also
considers each offer of an explorable kind (the studio's own GPU by default) with fewer than `min_runs` measured
renders, on a target that is idle or reports the jobs it holds, that nothing but its time (its deadline, or pushing
a queued job past that job's) rules out. It may take the request when:

- optimism: `z` sd below its learned p50 (never below what a render stopped unfinished proved;
  `learning.optimistic`), it renders before the abandon point: the earliest of `deadline - (the fallback's p90 ready
  time, its cold start always counted, + margin_s)`, so an abandoned try still leaves the fallback (the offer the
  engine chooses without exploring) time to make the deadline; its pessimistic p90 ready time; and the point where it
  has billed `SPEND` times the fallback's p50 cost, past which it has as good as lost;
- held on the GPU from now to that point, it pushes no queued job past its deadline (`localqueue.displaces`);
- money is judged pessimistically: the higher of the catalog's and the learned p90 cost, plus the fallback's p90,
  within `max_cost_usd` and every budget, and the p90 within today's exploration spend left;
- scored on the optimistic estimate (cost and time, against one common cheapest), it beats the fallback: a try is
  only worth making where the offer, if it is as good as the evidence allows, would win.

Of those the best score is chosen, with `explore_until` on the decision; the worker stops it there, learns a lower
bound and falls back with the offer ruled out. A decision not drawn, or with nothing explorable, is the engine's
usual one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from router.models.decision import Reason, Refusal
from router.models.offer import Offer
from router.policy import constraints, localqueue
from router.policy.context import Exploration, RoutingContext, TargetState
from router.policy.learning import CATALOG, Learned, optimistic
from router.policy.scoring import Profile, score

__all__ = ["Exploration", "Explored", "Limits", "allowance", "best", "worth_a_look"]


@dataclass(frozen=True, slots=True)
class Limits:
    """A deployment's (or a simulation's) exploration settings."""

    share: float = 1.0  # of decisions drawn to explore (router/settings.py's default)
    jobs_per_day: int = 20  # exploring attempts per UTC day
    usd_per_day: Decimal = Decimal("5.00")  # their p90 cost per UTC day
    margin_s: float = 600.0
    # 4 sd of the catalog's prior spread is ~100x faster: the studio's own GPU figures are 10-100x slow, and at 3 sd
    # (~30x) a GPU 50x faster than its catalog was never tried (docs/decisions.md, 2026-12-04).
    z: float = 4.0
    min_runs: int = 3


def drawn(limits: Limits, seed: str) -> float | None:
    """The decision's draw from a generator seeded by `seed` (a job's id; the run's seed and the request in the
    simulator), so a repeated decision draws the same; None when it isn't drawn to explore."""
    draw = random.Random(f"explore:{seed}").random()
    return draw if draw < limits.share else None


def allowance(limits: Limits, draw: float, jobs_today: int, usd_today: Decimal) -> Exploration | None:
    """The exploration part of a routing context. `draw`: uniform in [0, 1) from a generator seeded per decision
    (by the job id in the services, by the scenario's seed and the request in the simulator), so a repeated decision
    draws the same; `jobs_today`, `usd_today`: exploring attempts started this UTC day and their p90 cost. None
    when exploration is off."""
    if limits.share <= 0 or limits.jobs_per_day <= 0:
        return None
    return Exploration(draw=draw, share=limits.share, jobs_left=max(0, limits.jobs_per_day - jobs_today),
                       usd_left=max(Decimal(0), limits.usd_per_day - usd_today), margin_s=limits.margin_s,
                       z=limits.z, min_runs=limits.min_runs)


@dataclass(frozen=True, slots=True)
class Explored:
    """An exploring choice, for the engine to write into its decision."""

    offer: Offer
    estimate: constraints.Estimate  # the learned (or catalog) estimate, with the cost p90 made pessimistic
    ready_at: datetime  # p90 ready: the offer's own if it comes before the abandon point, else the fallback's
    explore_until: datetime
    score: float
    fallback: str
    why: str


def worth_a_look(scout: Exploration, offer: Offer, target: TargetState | None, learned: Learned | None,
                 reasons: Sequence[Reason]) -> bool:
    """Whether an offer the engine just estimated is a candidate for exploring (`best` decides): only its time rules
    it out, and the target is idle or reports its jobs, so `best` can tell whether a try would delay one of them past
    its deadline (a wait with no jobs behind it can't be judged)."""
    return (offer.provider in scout.kinds and target is not None and (bool(target.queue) or target.queue_wait_s <= 0)
            and (learned.runs if learned is not None else 0) < scout.min_runs
            and all(reason.code in _TIME_ONLY for reason in reasons))


# What a catalog-slow offer fails on that a try may still meet: `displaces` is judged again for the try (`_consider`),
# on the GPU time it can hold at most.
_TIME_ONLY = frozenset({Refusal.DEADLINE, Refusal.DISPLACES})
# A try is stopped once it has billed this many times its fallback's p50 cost (docs/decisions.md, 2026-12-04).
SPEND = 2


def best(scout: Exploration, candidates: Sequence[tuple[constraints.Estimate, Offer]],
         ranked: Sequence[tuple[float, constraints.Estimate, Offer]], ask: constraints.Ask,
         context: RoutingContext, profile: Profile, cheapest: float, now: datetime,
         deadline: datetime) -> Explored | None:
    """The candidate to explore, or None. `ranked`: the engine's feasible offers, best first; the first is the
    fallback (a candidate that is itself first wins without optimism, and needs no exploring)."""
    _, fb_est, fallback = ranked[0]
    # The fallback's p90 from the abandon point on, its cold start counted even where it is warm now.
    fb_model = context.learned.get(fallback.id) or CATALOG
    fb_target = context.target(fallback.id, fallback.provider)
    fb_cold = fallback.latency.cold_start_s if fb_model.cold_start_s is None else fb_model.cold_start_s
    fallback_s = (fb_est.ready_p90 - now).total_seconds() + (fb_cold if fb_target is None or fb_target.warm else 0.0)
    latest = deadline - timedelta(seconds=fallback_s + scout.margin_s)
    if latest <= now:
        return None
    room_s = (latest - now).total_seconds()
    found: Explored | None = None
    for est, offer in candidates:
        if offer.id == fallback.id:
            continue
        learned = context.learned.get(offer.id) or CATALOG
        factor = optimistic(learned, scout.z)
        spec = est.delivered
        # Cheap first: even the optimistic render must fit before the abandon point.
        hopeful_s = offer.latency.compute_seconds(spec.width, spec.height, spec.frames, p90=False) * factor
        if est.queue_wait_s + hopeful_s + offer.latency.transfer_s > room_s:
            continue
        option = _consider(scout, est, offer, learned, factor, ranked[0][0], fb_est, fallback, fallback_s, latest,
                           ask, context, profile, cheapest, now, deadline)
        if option is not None and (found is None or (option.score, found.offer.id) > (found.score, option.offer.id)):
            found = option
    return found


def _consider(scout: Exploration, est: constraints.Estimate, offer: Offer, learned: Learned, factor: float,
              fb_score: float, fb_est: constraints.Estimate, fallback: Offer, fallback_s: float, latest: datetime,
              ask: constraints.Ask, context: RoutingContext, profile: Profile, cheapest: float, now: datetime,
              deadline: datetime) -> Explored | None:
    # Whether it would win comes first: most candidates don't, and the money checks cost another estimate.
    target = context.target(offer.id, offer.provider)
    if target is not None and target.queue:  # it waits only for what runs and what is due first, as `est` did
        target = replace(target, queue_wait_s=est.queue_wait_s)
    hopes = Learned(time_p50=factor, cost=learned.cost, cost_decimal=learned.cost_decimal,
                    cold_start_s=learned.cold_start_s, queue_wait_s=learned.queue_wait_s)
    hopeful = constraints.estimate(offer, est.delivered, target, hopes, now)
    if hopeful is None:
        return None
    common = min(cheapest, hopeful.expected_cost)
    value = score(context.quality_of(offer), hopeful, ask.floor, common, profile, now, deadline)
    if common < cheapest:  # scores are against the cheapest: the fallback's moves with it
        fb_score = score(context.quality_of(fallback), fb_est, ask.floor, common, profile, now, deadline)
    if value <= fb_score:
        return None
    catalog = est if learned is CATALOG else constraints.estimate(offer, est.delivered, target, CATALOG, now)
    if catalog is None:
        return None
    cost_p90 = max(est.cost_p90, catalog.cost_p90)
    with_fallback = cost_p90 + fb_est.cost_p90
    request = ask.request
    if cost_p90 > scout.usd_left or (request.max_cost_usd is not None and with_fallback > request.max_cost_usd):
        return None
    if any(with_fallback > budget.remaining_usd for budget in context.budgets):
        return None
    # Never past the pessimistic p90 either: a render slower than that can't be billed more than the money
    # checks above assumed. Nor past the point where it has billed `SPEND` times the fallback's p50: cost weighs most
    # in every profile, so a try that slow has as good as lost, and the lower bound it leaves there rules out the
    # next try that could only win slower still.
    explore_until = min(latest, max(est.ready_p90, catalog.ready_p90))
    rate = est.unit_price * learned.cost_decimal  # per billed second
    if est.unit == "gpu_second" and rate > 0:
        spend_s = float(SPEND * fb_est.cost_p50 / rate)
        explore_until = min(explore_until, now + timedelta(seconds=est.queue_wait_s + spend_s))
    if hopeful.ready_p50 > explore_until:
        return None
    # Held to its abandon point, would it push a job queued behind it past that job's deadline? From now, not from
    # its estimated start: if what runs ahead ends early, the try starts early and may hold the GPU that much longer.
    held_s = (explore_until - now).total_seconds()
    if target is not None and target.queue and localqueue.displaces(target.queue, deadline, held_s, target.slots, now):
        return None
    ready_at = est.ready_p90 if est.ready_p90 <= explore_until else explore_until + timedelta(seconds=fallback_s)
    runs = learned.runs
    name, queued = (target.name, len(target.queue)) if target is not None else (offer.provider.value, 0)
    state = (f"{name} is idle" if not queued else f"{name} holds {queued} job{'' if queued == 1 else 's'}, none "
             "pushed past its deadline by the try held to its abandon point")
    why = (f"{offer.id} has {runs} measured run{'' if runs == 1 else 's'} (fewer than {scout.min_runs}) and "
           f"{state}; {scout.z:g} sd below its learned p50 it "
           f"renders in {hopeful.compute_p50_s:.0f} s (estimate {est.compute_p50_s:.0f} s), before the abandon point "
           f"{explore_until:%Y-%m-%dT%H:%M:%SZ}. Not done by then, it is stopped and {fallback.id} (p90 "
           f"{fallback_s:.0f} s with its cold start, + {scout.margin_s:.0f} s margin) still makes the deadline; "
           f"p90 ${cost_p90} + ${fb_est.cost_p90} within the caps; drawn {scout.draw:.3f} < share {scout.share:g}")
    return Explored(offer=offer, estimate=replace(est, cost_p90=cost_p90), ready_at=ready_at,
                    explore_until=explore_until, score=value, fallback=fallback.id, why=why)
