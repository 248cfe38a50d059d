"""Synthetic raters over a simulated month: does learned quality (router.policy.quality) find what raters think?

Each delivered video is rated, with probability `share`, by a rater whose score is 1 + Binomial(4, p), p chosen so
that the mean score is the offer's `truth.rating_mean` exactly (absent: its catalog stars): whole stars from 1 to 5,
a spread of up to one star. Draws are seeded by (seed, job, offer), so every run of a scenario rates alike.

The ratings go through the production estimator in delivery order. Per offer the report gives the truth, the
final estimate and its 90 % interval, whether the interval holds the truth, and the ratings it took until the
interval held the truth within ±`HALF_WIDTH` star ever after (`needed`; None: not within this month).

The month's routing does not read the ratings: the simulator decides by the stars, as a deployment does until an
offer has `min_ratings` of them. What it reports is how many ratings that takes to be right.

`month_scorecard` turns the run into ledger rows and ratings and scores them as `GET /v1/scorecard` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from hvr.sim.simulator import AttemptRecord, JobRecord, RunResult
from hvr.sim.truth import TruthConfig, by_offer, rated, rater_score
from router.models.ledger import LedgerEntry
from router.models.offer import LocalEnergyPricing, Offer
from router.models.rating import Rating, ScoreTally
from router.policy.quality import DEFAULT_MIN_RATINGS, Estimate, estimate
from router.services.scorecard import Metric, metrics_of

HALF_WIDTH = 0.25  # star: "recovered" is the truth inside an interval no wider than this either side
DEFAULT_SHARE = 0.5  # of delivered videos someone rates
SIM_TENANT = "sim"


@dataclass(frozen=True)
class Recovery:
    offer: str
    stars: int
    truth: float
    final: Estimate
    needed: int | None  # ratings until the interval held the truth within HALF_WIDTH ever after

    @property
    def covered(self) -> bool:
        return self.final.low <= self.truth <= self.final.high


@dataclass(frozen=True)
class MonthRatings:
    ratings: list[Rating]
    recoveries: list[Recovery]  # per rated offer, most rated first


def truth_of(config: TruthConfig, offer: Offer) -> float:
    return by_offer(config.rating_mean, offer, float(offer.quality))


def delivered(job: JobRecord) -> AttemptRecord | None:
    final = job.final
    return final if job.delivered and final is not None and final.status == "succeeded" else None


def rate_month(result: RunResult, offers: Sequence[Offer], config: TruthConfig,
               share: float = DEFAULT_SHARE) -> MonthRatings:
    by_id = {offer.id: offer for offer in offers}
    done = sorted(((job, attempt) for job in result.jobs if (attempt := delivered(job)) is not None),
                  key=lambda pair: pair[1].ended_at or 0.0)
    ratings: list[Rating] = []
    history: dict[str, list[Estimate]] = {}
    tallies: dict[str, ScoreTally] = {}
    for job, attempt in done:
        offer = attempt.offer
        if not rated(config.seed, job.key, share):
            continue
        score = rater_score(config.seed, job.key, offer.id, truth_of(config, offer))
        tallies[offer.id] = tallies.get(offer.id, ScoreTally()).plus(score)
        history.setdefault(offer.id, []).append(estimate(offer.quality, tallies[offer.id]))
        ended = result.at(attempt.ended_at or 0.0)
        ratings.append(Rating(tenant=SIM_TENANT, job_id=f"job_{job.key}", rater="sim-rater", score=score,
                              offer=offer.id, provider=offer.provider, model=offer.model,
                              delivered_on=ended.date(), rated_at=ended))
    recoveries = []
    for offer_id, steps in sorted(history.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        offer = by_id[offer_id]
        recoveries.append(Recovery(offer=offer_id, stars=offer.quality, truth=truth_of(config, offer),
                                   final=steps[-1], needed=needed(steps, truth_of(config, offer))))
    return MonthRatings(ratings=ratings, recoveries=recoveries)


def needed(steps: Sequence[Estimate], truth: float) -> int | None:
    """The ratings after which every estimate's interval held the truth and reached no further than HALF_WIDTH
    from it; None when the last one doesn't."""
    found = None
    for step in reversed(steps):
        if not (step.low <= truth <= step.high and truth - step.low <= HALF_WIDTH and step.high - truth <= HALF_WIDTH):
            break
        found = step.ratings
    return found


def ledger_rows(result: RunResult, tenant: str = SIM_TENANT) -> list[LedgerEntry]:
    """The run's attempts as the worker's ledger rows would have them (those that started: refused ones cost
    nothing and have no row)."""
    rows = []
    for job in result.jobs:
        for attempt in job.attempts:
            if attempt.ended_at is None or attempt.delivered is None or attempt.status == "refused":
                continue
            offer, spec = attempt.offer, attempt.delivered
            outcome = "succeeded" if attempt.status == "succeeded" else "failed"
            rows.append(LedgerEntry(
                tenant=tenant, job_id=f"job_{job.key}", attempt_id=f"att_{job.key}_{attempt.n}",
                provider=offer.provider, offer=offer.id, model=offer.model, outcome=outcome,
                billed_units={"gpu_seconds": Decimal(f"{attempt.gpu_seconds:.3f}")}, unit="gpu_second",
                unit_price_usd=Decimal(0), pricing_version="sim", estimated_usd=attempt.reserved,
                actual_usd=attempt.cost, resolution=f"{spec.width}x{spec.height}",
                started_at=result.at(attempt.routed_at), ended_at=result.at(attempt.ended_at)))
    return rows


def month_scorecard(result: RunResult, offers: Sequence[Offer], ratings: Sequence[Rating]) -> list[Metric]:
    """The studio's scorecard of the simulated month, computed as the API computes it."""
    rows = ledger_rows(result)
    pricing = next((o.pricing for o in offers if isinstance(o.pricing, LocalEnergyPricing)), None)
    first = result.start.date()
    last = (result.start + timedelta(seconds=result.horizon_s)).date()
    return metrics_of(rows, ratings, pricing, first, last)


def format_recoveries(month: MonthRatings, min_ratings: int = DEFAULT_MIN_RATINGS) -> str:
    lines = [f"{len(month.ratings)} synthetic ratings; learned quality per offer (90 % interval), the truth, and the "
             f"ratings until the interval held it within ±{HALF_WIDTH} star:",
             "OFFER                          STARS  TRUTH  LEARNED (90 %)       N  COVERS  NEEDED"]
    for found in month.recoveries:
        est = found.final
        use = "*" if est.ratings >= min_ratings else " "
        lines.append(f"{found.offer:<30} {found.stars:>5}  {found.truth:>5.2f}  {est.value:.2f} ({est.low:.2f}-"
                     f"{est.high:.2f})  {est.ratings:>4}{use} {'yes' if found.covered else 'NO':>6}  "
                     f"{found.needed if found.needed is not None else '-':>6}")
    lines.append(f"* at least {min_ratings} ratings: the learned figure replaces the stars in routing")
    return "\n".join(lines)


# The raters' truth `python -m hvr.sim.ratings` uses: two offers the raters disagree with the catalog about.
SAMPLE_RATING_MEAN = {"local/animatediff-sd15": 2.6, "local/wan21-1.3b": 4.4, "replicate/wan-2.2-t2v-fast": 3.4,
                      "veo": 4.6}


def main(argv: list[str] | None = None) -> int:
    """A simulated month rated by synthetic raters: what learned quality recovers, and the month's scorecard.

        python -m hvr.sim.ratings [VIDEOS [SEED]]
    """
    import sys

    from hvr.scorecard_text import format_scorecard
    from hvr.sim import baselines, workload
    from hvr.sim.simulator import SimConfig, simulate
    from hvr.sim.truth import Truth
    from router.policy.catalog import load_catalog
    from router.services.scorecard import Scorecard

    args = argv if argv is not None else sys.argv[1:]
    videos, seed = (int(args[0]) if args else 1000), (int(args[1]) if len(args) > 1 else 3)
    offers = load_catalog().offers
    config = TruthConfig(seed=seed, rating_mean=SAMPLE_RATING_MEAN)
    arrivals = workload.generate(videos, seed=seed)
    for share, how in ((None, "routing by the catalog's stars all month"),
                       (DEFAULT_SHARE, f"routing by learned quality from {DEFAULT_MIN_RATINGS} ratings on")):
        run = simulate(arrivals, offers, baselines.make("hvr", offers, seed), Truth(config),
                       SimConfig(rating_share=share))
        rated = rate_month(run, offers, config)
        print(f"\n=== {how} ===")
        print(format_recoveries(rated))
        metrics = month_scorecard(run, offers, rated.ratings)
        first, last = run.start.date(), (run.start + timedelta(seconds=run.horizon_s)).date()
        print("\n" + format_scorecard(Scorecard(start=first, end=last, tenant=SIM_TENANT, metrics=metrics,
                                                ratings=len(rated.ratings), demo_ratings=0)))
        print(f"delivered {sum(job.delivered for job in run.jobs)} of {len(run.jobs)} requests")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
