"""The studio's success metrics over a window (`GET /v1/scorecard`, `hvr scorecard`): each with its target, its value,
how many observations it rests on and a verdict (`docs/studio.md`; the studio's comparison, "Success metrics").

Everything comes from the ledger rows whose attempt ended in the window (as cost reports read it) and the ratings
of jobs delivered in it. A metric with fewer observations than its minimum is `not_enough_data`, never a guess;
otherwise it is `held` or `missed` on its value. "Gemini" is Google's Veo (the studio's cloud renderer); a model
family is the leading word of the model's name (`wan21-14b`, `wan-video/wan-2.2-t2v-fast`: `wan`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from router.models.common import ProviderKind, money
from router.models.ledger import LedgerEntry
from router.models.offer import LocalEnergyPricing
from router.models.offer import model_family as family
from router.models.rating import Rating
from router.services.costs import SUCCEEDED, local_gpu_costs, rows_between
from router.services.deps import Deps

Verdict = Literal["held", "missed", "not_enough_data"]
MIN_VIDEOS = 10  # per group a cost or time figure compares
MIN_RATINGS = 10  # per group a rating figure compares
MIN_PAIRS = 10  # pairwise preferences between WAN and another family
WAN, ANIMATEDIFF, GEMINI = "wan", "animatediff", "veo"
# The studio's own targets.
SATISFACTION = 4.0  # mean score, above
COST_PER_VIDEO_USD = Decimal("0.50")  # below
TURNAROUND_P50_MIN = 30.0  # below
GPU_UTILIZATION = 0.60  # above
WAN_QUALITY_UPLIFT = 0.20  # WAN's mean score over AnimateDiff's, above
WAN_COST_VS_GEMINI = -0.30  # WAN's cost per video over Veo's, below
WAN_TIME_VS_GEMINI = 0.50  # WAN's p50 turnaround over Veo's, below
WAN_PREFERENCE = 0.40  # share of pairs WAN won, above
METHOD = [
    "the window's ledger rows (every attempt that ended in it) and the ratings of jobs delivered in it",
    "a video: a job with a succeeded attempt (a long video's segments are one); cost per video: every attempt's "
    "actual cost (failures too) over the videos",
    "turnaround: a delivered job's first attempt start to its delivering attempt's end, from the ledger; p50 of them",
    "GPU utilization: as `hvr costs --tco` (local GPU-seconds over the window's seconds)",
    "satisfaction: the mean score; WAN quality: WAN's mean score over AnimateDiff's, less 1",
    "WAN cost and time: WAN's cost per video and p50 turnaround over Veo's (Gemini), less 1",
    "preference for WAN: of the rated pairs with WAN on exactly one side, the share WAN won",
    f"not_enough_data below {MIN_VIDEOS} videos, {MIN_RATINGS} ratings or {MIN_PAIRS} pairs per group compared",
]


class Metric(BaseModel):
    name: str
    target: str  # as the studio set it: "> 4.0", "< 30 min", "tracked"
    value: float | None  # None: nothing to compute it from
    n: int  # the observations it rests on (videos, ratings, pairs, local attempts)
    verdict: Verdict
    detail: str = ""  # the figures behind it, money exact


class Scorecard(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
    start: date = Field(alias="from")
    end: date = Field(alias="to")
    tenant: str | None  # None: every tenant (admin keys)
    metrics: list[Metric]
    ratings: int  # ratings of the window's deliveries
    demo_ratings: int  # of which seeded by `make demo`, not a person's
    method: list[str] = METHOD


@dataclass(frozen=True)
class Delivery:
    """One delivered job of the window, as the ledger tells it."""

    job_id: str
    offer: str
    family: str
    provider: ProviderKind
    turnaround_s: float


def deliveries(rows: Sequence[LedgerEntry]) -> list[Delivery]:
    """One per delivered job: a long video's segments are attempts of one job, each a succeeded row, and one video.
    Its offer is the last segment's; its turnaround runs from its first attempt's start to its last row's end."""
    first_start: dict[tuple[str, str], float] = {}
    last: dict[tuple[str, str], LedgerEntry] = {}
    for row in rows:
        key = (row.tenant, row.job_id)
        started = row.started_at.timestamp()
        first_start[key] = min(first_start.get(key, started), started)
        if row.outcome == SUCCEEDED and (key not in last or row.ended_at >= last[key].ended_at):
            last[key] = row
    return [Delivery(job_id=row.job_id, offer=row.offer, family=family(row.model), provider=row.provider,
                     turnaround_s=row.ended_at.timestamp() - first_start[key])
            for key, row in sorted(last.items(), key=lambda kv: kv[1].ended_at)]


def _verdict(enough: bool, held: bool) -> Verdict:
    return "not_enough_data" if not enough else "held" if held else "missed"


def _spend(rows: Iterable[LedgerEntry], keep: Callable[[LedgerEntry], bool]) -> Decimal:
    return sum((row.actual_usd for row in rows if keep(row)), Decimal(0))


def _per_video(rows: Sequence[LedgerEntry], videos: int, keep: Callable[[LedgerEntry], bool]) -> Decimal | None:
    return money(_spend(rows, keep) / videos) if videos else None


def _p50(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _mean(scores: Sequence[int]) -> float | None:
    return statistics.fmean(scores) if scores else None


def _relative(ours: float | Decimal | None, theirs: float | Decimal | None) -> float | None:
    if ours is None or theirs is None or not theirs:
        return None
    return round(float(ours) / float(theirs) - 1, 4)


def usage(done: Sequence[Delivery]) -> list[Metric]:
    """The usage ratio the studio tracks (AnimateDiff over Gemini), then each family's and provider's share."""
    by_family: dict[str, int] = {}
    by_provider: dict[str, int] = {}
    for video in done:
        by_family[video.family] = by_family.get(video.family, 0) + 1
        by_provider[video.provider.value] = by_provider.get(video.provider.value, 0) + 1
    animatediff, gemini = by_family.get(ANIMATEDIFF, 0), by_family.get(GEMINI, 0)
    metrics = [Metric(name="usage_ratio_animatediff_to_gemini", target="tracked",
                      value=round(animatediff / gemini, 4) if gemini else None, n=animatediff + gemini,
                      verdict=_verdict(animatediff + gemini > 0, True),
                      detail=f"{animatediff} AnimateDiff videos, {gemini} Veo (Gemini)")]
    total = len(done)
    for kind, counts in (("family", by_family), ("provider", by_provider)):
        for name, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            metrics.append(Metric(name=f"usage_share.{kind}.{name}", target="tracked", value=round(count / total, 4),
                                  n=count, verdict="held", detail=f"{count} of {total} videos"))
    return metrics


def _pairs(ratings: Sequence[Rating]) -> tuple[int, int]:
    """(pairs with WAN on exactly one side, those WAN won)."""
    pairs = won = 0
    for rating in ratings:
        if rating.preferred_over_offer is None:
            continue
        winner_wan = family(rating.model) == WAN
        loser_wan = family(rating.preferred_over_offer.partition("/")[2]) == WAN
        if winner_wan != loser_wan:
            pairs += 1
            won += winner_wan
    return pairs, won


def metrics_of(rows: Sequence[LedgerEntry], ratings: Sequence[Rating], pricing: LocalEnergyPricing | None,
               start: date, end: date) -> list[Metric]:
    done = deliveries(rows)
    family_of = {row.offer: family(row.model) for row in rows}
    videos = len(done)
    found = usage(done)

    scores = [r.score for r in ratings]
    mean = _mean(scores)
    found.append(Metric(name="satisfaction", target="> 4.0 / 5", value=None if mean is None else round(mean, 3),
                        n=len(scores), verdict=_verdict(len(scores) >= MIN_RATINGS,
                                                        mean is not None and mean > SATISFACTION),
                        detail=f"mean of {len(scores)} ratings"))

    per_video = _per_video(rows, videos, lambda _: True)
    cost_target = COST_PER_VIDEO_USD
    found.append(Metric(
        name="cost_per_video_usd", target=f"< {cost_target}", value=None if per_video is None else float(per_video),
        n=videos, verdict=_verdict(videos >= MIN_VIDEOS, per_video is not None and per_video < cost_target),
        detail=(f"${money(_spend(rows, lambda _: True))} over {videos} videos"
                + (f": ${per_video} per video" if per_video is not None else ""))))

    p50 = _p50([d.turnaround_s for d in done])
    minutes = None if p50 is None else round(p50 / 60, 3)
    found.append(Metric(name="turnaround_p50_min", target="< 30 min", value=minutes, n=videos,
                        verdict=_verdict(videos >= MIN_VIDEOS,
                                         minutes is not None and minutes < TURNAROUND_P50_MIN),
                        detail=f"p50 of {videos} delivered jobs" + (f": {p50:.0f} s" if p50 is not None else "")))

    local = [row for row in rows if row.provider is ProviderKind.LOCAL]
    if pricing is not None:
        gpu = local_gpu_costs(list(rows), pricing, start, end)
        found.append(Metric(name="gpu_utilization", target="> 60 %", value=gpu.utilization, n=len(local),
                            verdict=_verdict(True, gpu.utilization > GPU_UTILIZATION),
                            detail=f"{gpu.busy_gpu_seconds} GPU-seconds of {gpu.period_seconds} s"))

    # After a WAN proof of concept: WAN against AnimateDiff (ratings) and against Gemini (cost, time, preference).
    wan = [r.score for r in ratings if family(r.model) == WAN]
    animatediff = [r.score for r in ratings if family(r.model) == ANIMATEDIFF]
    uplift = _relative(_mean(wan), _mean(animatediff))
    found.append(Metric(
        name="wan_quality_over_animatediff", target="> +20 %", value=uplift, n=len(wan) + len(animatediff),
        verdict=_verdict(min(len(wan), len(animatediff)) >= MIN_RATINGS,
                         uplift is not None and uplift > WAN_QUALITY_UPLIFT),
        detail=f"{len(wan)} WAN ratings, {len(animatediff)} AnimateDiff"))

    wan_done = [d for d in done if d.family == WAN]
    gemini_done = [d for d in done if d.family == GEMINI]
    wan_cost = _per_video(rows, len(wan_done), lambda row: family_of[row.offer] == WAN)
    gemini_cost = _per_video(rows, len(gemini_done), lambda row: family_of[row.offer] == GEMINI)
    enough = min(len(wan_done), len(gemini_done)) >= MIN_VIDEOS
    cheaper = _relative(wan_cost, gemini_cost)
    found.append(Metric(
        name="wan_cost_vs_gemini", target="< -30 %", value=cheaper, n=len(wan_done) + len(gemini_done),
        verdict=_verdict(enough, cheaper is not None and cheaper < WAN_COST_VS_GEMINI),
        detail=f"WAN {_dollars(wan_cost)} per video ({len(wan_done)}), Veo {_dollars(gemini_cost)} "
               f"({len(gemini_done)})"))
    slower = _relative(_p50([d.turnaround_s for d in wan_done]), _p50([d.turnaround_s for d in gemini_done]))
    found.append(Metric(
        name="wan_time_vs_gemini", target="< +50 %", value=slower, n=len(wan_done) + len(gemini_done),
        verdict=_verdict(enough, slower is not None and slower < WAN_TIME_VS_GEMINI),
        detail="p50 turnaround, WAN over Veo"))

    pairs, won = _pairs(ratings)
    share = round(won / pairs, 4) if pairs else None
    found.append(Metric(name="wan_preference", target="> 40 %", value=share, n=pairs,
                        verdict=_verdict(pairs >= MIN_PAIRS, share is not None and share > WAN_PREFERENCE),
                        detail=f"WAN preferred in {won} of {pairs} pairs against another family"))
    return found


def scorecard(deps: Deps, start: date, end: date, tenant: str | None) -> Scorecard:
    rows = rows_between(deps.ledger, start, end, tenant)
    ratings = deps.ratings.between(start, end, tenant)
    pricing = next((o.pricing for o in deps.catalog.offers if isinstance(o.pricing, LocalEnergyPricing)), None)
    return Scorecard(start=start, end=end, tenant=tenant, metrics=metrics_of(rows, ratings, pricing, start, end),
                     ratings=len(ratings), demo_ratings=sum(r.demo for r in ratings))


def _dollars(amount: Decimal | None) -> str:
    """A figure for a detail line: no videos is "-", never Python's None."""
    return "-" if amount is None else f"${amount}"
