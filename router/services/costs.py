"""Cost reports from the ledger: spend grouped for `GET /v1/costs`, and the studio's TCO table (`hvr costs --tco`).

Both read the ledger one calendar month at a time (its `by_period` index) and keep the rows whose attempt ended
inside the window, by UTC day — the same day the ledger and its S3 export file a row under. Money is summed as
Decimal and only quantized at the end.

TCO: every delivered video of the window is priced again, by the catalog, as if it had gone all to Veo, all to
the local GPU, or by the studio's static rule, and set beside what hvr actually paid (failed attempts included).
Counterfactuals use the offers' own pricing and p50 latency through `constraints.estimate`, never a copy of it.
The owned GPU's depreciation is a fixed cost: it is reported for the window beside the variable spend, with the
GPU's utilization, whichever basis (`LocalCostBasis`) charged local renders.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from router.errors import CONTRACT, InvalidRequest
from router.models.common import AspectRatio, Mode, Money, ProviderKind, iso, money
from router.models.decision import DeliveredSpec
from router.models.ledger import LedgerEntry
from router.models.offer import LocalCostBasis, LocalEnergyPricing, Offer, tier_of
from router.policy.catalog import Catalog
from router.policy.constraints import DURATION_TOLERANCE_FRACTION, DURATION_TOLERANCE_S, estimate

MAX_WINDOW_DAYS = 366  # a year of monthly index queries at most per report
NO_CAMPAIGN = "-"
VEO_BASELINE = "veo/veo-3.1-fast"
STATIC_LOCAL = "local/animatediff-sd15"
STATIC_MAX_SIDE = 512  # the studio's rule: AnimateDiff for text-to-video up to 512 px, Veo for everything else
SUCCEEDED = "succeeded"
_PRICED_AT = datetime(2000, 1, 1, tzinfo=UTC)  # estimate() wants a "now" for ready times; reports ignore them
HOURS_PER_MONTH = Decimal(730)  # 8,760 h a year over 12: the fixed cost of an average month


class GroupBy(StrEnum):
    PROVIDER = "provider"
    OFFER = "offer"
    TENANT = "tenant"
    CAMPAIGN = "campaign"
    DAY = "day"


class LedgerSource(Protocol):
    def for_period(self, period: str) -> list[LedgerEntry]: ...


class WindowError(InvalidRequest, ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", detail=CONTRACT, errors=[{"field": field, "message": message}])
        self.field, self.message = field, message


# --- window ----------------------------------------------------------------------------------------------------


def report_window(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    """Both ends inclusive; unset, the current month up to today (or the month of whichever end is given)."""
    if end is None:
        end = today if start is None or start <= today else start
    if start is None:
        start = end.replace(day=1)
    if start > end:
        raise WindowError("to", f"{end} is before from {start}")
    if (end - start).days >= MAX_WINDOW_DAYS:
        raise WindowError("to", f"the window may span at most {MAX_WINDOW_DAYS} days")
    return start, end


def periods(start: date, end: date) -> list[str]:
    """The calendar months (`YYYY-MM`) a window touches, in order."""
    year, month, found = start.year, start.month, []
    while (year, month) <= (end.year, end.month):
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def day_of(entry: LedgerEntry) -> str:
    return iso(entry.ended_at)[:10]  # exactly the ledger's own `day` attribute


def rows_between(ledger: LedgerSource, start: date, end: date, tenant: str | None = None,
                 provider: ProviderKind | None = None) -> list[LedgerEntry]:
    """Ledger rows whose attempt ended in [start, end], optionally one tenant's or one provider's only."""
    first, last = start.isoformat(), end.isoformat()
    return [row for period in periods(start, end) for row in ledger.for_period(period)
            if first <= day_of(row) <= last and (tenant is None or row.tenant == tenant)
            and (provider is None or row.provider is provider)]


# --- GET /v1/costs -----------------------------------------------------------------------------------------------


class CostGroup(BaseModel):
    key: str
    videos: int  # delivered videos, each where its delivering attempt falls (a long video's segments are one)
    actual_usd: Money  # every attempt's actual cost: failed attempts are paid for too
    estimated_usd: Money


class CostReport(BaseModel):
    """`GET /v1/costs` (docs/architecture.md, "API contract"), with the window and scope it covers echoed back."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
    start: date = Field(alias="from")
    end: date = Field(alias="to")
    group_by: GroupBy
    tenant: str | None  # the one tenant reported on; null: every tenant (admin keys only)
    groups: list[CostGroup]
    total_usd: Money


def group_key(row: LedgerEntry, group_by: GroupBy) -> str:
    if group_by is GroupBy.PROVIDER:
        return row.provider.value
    if group_by is GroupBy.OFFER:
        return row.offer
    if group_by is GroupBy.TENANT:
        return row.tenant
    if group_by is GroupBy.CAMPAIGN:
        return row.campaign_id or NO_CAMPAIGN
    return day_of(row)


def summarize(rows: Iterable[LedgerEntry], start: date, end: date, group_by: GroupBy,
              tenant: str | None) -> CostReport:
    rows = list(rows)
    # A long-form job's segments are succeeded rows of one video: it counts once, where its last segment falls.
    last: dict[tuple[str, str], LedgerEntry] = {}
    for row in rows:
        if row.outcome == SUCCEEDED:
            seen = last.get((row.tenant, row.job_id))
            if seen is None or (row.ended_at, row.attempt_id) > (seen.ended_at, seen.attempt_id):
                last[(row.tenant, row.job_id)] = row
    sums: dict[str, list[Decimal]] = {}
    videos: dict[str, int] = {}
    for row in rows:
        key = group_key(row, group_by)
        actual, estimated = sums.setdefault(key, [Decimal(0), Decimal(0)])
        sums[key] = [actual + row.actual_usd, estimated + row.estimated_usd]
        videos[key] = videos.get(key, 0) + (last.get((row.tenant, row.job_id)) is row)
    groups = [CostGroup(key=key, videos=videos[key], actual_usd=money(actual), estimated_usd=money(estimated))
              for key, (actual, estimated) in sums.items()]
    # Days read in date order; everything else biggest spender first.
    groups.sort(key=(lambda g: g.key) if group_by is GroupBy.DAY else (lambda g: (-g.actual_usd, g.key)))
    total = money(sum((actual for actual, _ in sums.values()), Decimal(0)))
    return CostReport(start=start, end=end, group_by=group_by, tenant=tenant, groups=groups, total_usd=total)


def cost_report(ledger: LedgerSource, start: date, end: date, group_by: GroupBy, tenant: str | None,
                provider: ProviderKind | None = None) -> CostReport:
    """Spend in [start, end] grouped one way; `tenant` None means every tenant (the caller checks who may)."""
    return summarize(rows_between(ledger, start, end, tenant, provider), start, end, group_by, tenant)


# --- TCO ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Video:
    """A delivered video as the ledger describes it: enough to ask what another offer would have charged."""

    offer: str
    mode: Mode | None
    width: int
    height: int
    frames: int
    duration_s: float
    period: str

    @property
    def fps(self) -> float:
        return self.frames / self.duration_s if self.duration_s > 0 else 0.0


def video_of(row: LedgerEntry, mode: Mode | None) -> Video:
    width, _, height = row.resolution.partition("x")
    return Video(offer=row.offer, mode=mode, width=int(width), height=int(height),
                 frames=int(row.billed_units.get("frames", 0)),
                 duration_s=float(row.billed_units.get("output_seconds", 0)), period=day_of(row)[:7])


def aspect_of(width: int, height: int) -> AspectRatio | None:
    if width == height:
        return AspectRatio.SQUARE
    wide = AspectRatio.WIDE
    if math.isclose(max(width, height) / min(width, height), wide.ratio, rel_tol=0.05):
        return wide if width > height else AspectRatio.TALL
    return None


def render_on(offer: Offer, video: Video, size: tuple[int, int] | None = None) -> DeliveredSpec | None:
    """What `offer` would deliver for this video (its size or the same tier and aspect, the length within the
    engine's tolerance), or None where it can't. Quality is not asked: the ledger doesn't keep the floor."""
    if video.mode is None or video.mode not in offer.mode_set or video.fps <= 0:
        return None
    if size is None:
        wanted = (video.width, video.height)
        aspect = aspect_of(*wanted)
        size = wanted if wanted in offer.size_list else (
            offer.size_for_tier(tier_of(min(wanted)), aspect) if aspect is not None else None)
    if size is None:
        return None
    fps = min(offer.fps.max, max(offer.fps.min, video.fps))
    duration = offer.frames.snap_duration(video.duration_s) or video.duration_s
    spec = DeliveredSpec(width=size[0], height=size[1], frames=offer.frames.snap(duration * fps), fps=fps)
    tolerance = max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_FRACTION * video.duration_s)
    return spec if abs(spec.duration_s - video.duration_s) <= tolerance else None


def price(offer: Offer, spec: DeliveredSpec) -> Decimal | None:
    """The catalog's p50 cost of one delivery (GPU-seconds at the offer's rate, or its per-second/per-video price)."""
    found = estimate(offer, spec, None, None, _PRICED_AT)
    return found.cost_p50 if found is not None else None


def veo_cost(veo: Offer | None, video: Video) -> Decimal | None:
    """Veo at the video's resolution tier (or the next one up: Veo has no 480p) and aspect, for the video's length
    rounded up to a length Veo renders; beyond its longest clip, by the second (several clips). None: a catalog
    without the Veo baseline."""
    if veo is None:
        return None
    tiers = sorted({tier_of(min(size)) for size in veo.size_list})
    tier = tier_of(min(video.width, video.height))
    tier = next((t for t in tiers if t >= tier), tiers[-1])
    sizes = [s for s in veo.size_list if tier_of(min(s)) == tier]
    sizes.sort(key=lambda s: ((s[0] > s[1]) != (video.width > video.height), s))  # keep the orientation if it can
    lengths = [d for d in veo.frames.durations_s or [] if d >= video.duration_s - 0.01]
    seconds = min(lengths) if lengths else video.duration_s
    fps = veo.fps.default
    return price(veo, DeliveredSpec(width=sizes[0][0], height=sizes[0][1], frames=round(seconds * fps), fps=fps))


def local_cost(local_offers: list[Offer], video: Video) -> Decimal | None:
    """The cheapest local offer able to render the video; None: not possible locally."""
    costs = [cost for offer in local_offers
             if (spec := render_on(offer, video)) is not None and (cost := price(offer, spec)) is not None]
    return min(costs) if costs else None


def static_rule_cost(animatediff: Offer | None, veo: Offer | None, video: Video) -> Decimal | None:
    """The studio's rule: small text-to-video on AnimateDiff (at its own 512x512), Veo for the rest — and for what
    AnimateDiff can't render (longer than its 128 frames)."""
    if (animatediff is not None and video.mode is Mode.T2V
            and max(video.width, video.height) <= STATIC_MAX_SIDE):
        largest = max(animatediff.size_list, key=lambda s: s[0] * s[1])
        spec = render_on(animatediff, video, size=largest)
        cost = price(animatediff, spec) if spec is not None else None
        if cost is not None:
            return cost
    return veo_cost(veo, video)


class TcoOffer(BaseModel):
    offer: str
    videos: int
    actual_usd: Money  # what its delivered videos cost
    per_video_usd: Money | None
    other_attempts_usd: Money  # failed, cancelled and expired attempts on this offer


class TcoMonth(BaseModel):
    period: str
    videos: int
    as_routed_usd: Money
    all_veo_usd: Money
    all_local_usd: Money  # the videos possible locally only
    not_possible_locally: int
    static_rule_usd: Money


class TcoOption(BaseModel):
    option: str
    videos: int  # the videos this option could price
    not_possible: int
    total_usd: Money
    per_video_usd: Money | None
    monthly_usd_at_1000: Money | None  # the studio's yardstick: 1,000 videos a month
    yearly_usd_at_1000: Money | None


class TcoLocalGpu(BaseModel):
    """The owned GPU over the window: its fixed cost beside the variable spend, and how busy it was."""

    cost_basis: LocalCostBasis  # how local renders were charged in decisions and on the ledger
    depreciation_usd_per_hour: Decimal
    fixed_monthly_usd: Money  # depreciation over an average month (730 h)
    fixed_usd: Money  # depreciation over the window's whole days: paid whether the GPU works or idles
    variable_usd: Money  # every attempt's spend, less the depreciation charged to renders (full basis)
    local_energy_usd: Money  # the local renders' energy, inside variable_usd
    charged_to_renders_usd: Money  # full basis: depreciation already inside "as routed"; marginal: 0
    total_usd: Money  # variable + fixed: what the window cost, the GPU's depreciation counted once
    busy_gpu_seconds: Decimal  # GPU-seconds of the report's local attempts, whatever their outcome
    period_seconds: int
    utilization: float  # busy / period


class TcoReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
    start: date = Field(alias="from")
    end: date = Field(alias="to")
    tenant: str | None
    videos: int
    mode_unknown: int  # videos whose mode couldn't be told (job gone): priced on Veo only
    offers: list[TcoOffer]
    months: list[TcoMonth]
    options: list[TcoOption]
    local_gpu: TcoLocalGpu | None  # None: the catalog has no local GPU
    method: list[str]


METHOD = [
    "as routed: what hvr paid, every attempt included (failures cost too), over the delivered videos",
    f"all Veo: {VEO_BASELINE} per second at each video's resolution tier (next tier up where Veo has none), "
    "for its length rounded up to a length Veo renders (beyond its longest clip, by the second), whatever the mode",
    "all local: the cheapest local offer able to render each video's size, mode and length, priced by GPU-seconds "
    "at the catalog's p50 latency; videos no local offer can render are counted, not priced; quality floors are "
    "not compared (the ledger doesn't keep them)",
    f"static rule: {STATIC_LOCAL} for text-to-video up to {STATIC_MAX_SIDE} px (rendered at 512x512), "
    f"{VEO_BASELINE} for the rest",
    "at 1,000 videos/month: cost per video x 1,000 (monthly) and x 12,000 (yearly)",
]


def local_gpu_costs(rows: list[LedgerEntry], pricing: LocalEnergyPricing, start: date,
                    end: date) -> TcoLocalGpu:
    """The GPU's fixed cost over [start, end] beside the variable spend of `rows`, and its utilization.

    Rows written before the ledger kept energy apart were charged the full cost: their energy and depreciation
    shares are worked out from their GPU-seconds at today's rates."""
    days = (end - start).days + 1
    busy = energy = charged = Decimal(0)
    for row in rows:
        if row.provider is not ProviderKind.LOCAL:
            continue
        seconds = row.billed_units.get("gpu_seconds", Decimal(0))
        busy += seconds
        energy += row.energy_usd if row.energy_usd is not None else pricing.energy_usd_per_gpu_second * seconds
        if (row.cost_basis or LocalCostBasis.FULL) is LocalCostBasis.FULL:
            charged += (row.amortized_usd if row.amortized_usd is not None
                        else pricing.depreciation_usd_per_gpu_second * seconds)
    variable = sum((row.actual_usd for row in rows), Decimal(0)) - charged
    fixed = pricing.depreciation_usd_per_hour * 24 * days
    period_s = days * 86400
    return TcoLocalGpu(
        cost_basis=pricing.cost_basis, depreciation_usd_per_hour=pricing.depreciation_usd_per_hour,
        fixed_monthly_usd=money(pricing.depreciation_usd_per_hour * HOURS_PER_MONTH), fixed_usd=money(fixed),
        variable_usd=money(variable), local_energy_usd=money(energy), charged_to_renders_usd=money(charged),
        total_usd=money(variable + fixed), busy_gpu_seconds=busy, period_seconds=period_s,
        utilization=round(float(busy) / period_s, 6))


def _per_video(total: Decimal, videos: int) -> Decimal | None:
    return money(total / videos) if videos else None


def _option(name: str, costs: list[Decimal | None], paid: Decimal | None = None) -> TcoOption:
    """An option's row; `paid` replaces the sum of per-video costs where money was spent beyond them (failures)."""
    priced = [c for c in costs if c is not None]
    total = sum(priced, Decimal(0)) if paid is None else paid
    per = total / len(priced) if priced else None
    return TcoOption(option=name, videos=len(priced), not_possible=len(costs) - len(priced), total_usd=money(total),
                     per_video_usd=money(per) if per is not None else None,
                     monthly_usd_at_1000=money(per * 1000) if per is not None else None,
                     yearly_usd_at_1000=money(per * 12000) if per is not None else None)


def mode_for(row: LedgerEntry, catalog: Catalog, job_mode: Callable[[str, str], Mode | None] | None) -> Mode | None:
    """The row's own mode; for rows older than that field, a single-mode offer tells it, or else the job is asked
    (when a lookup is given)."""
    if row.mode is not None:
        return row.mode
    offer = catalog.get(row.offer)
    if offer is not None and len(offer.modes) == 1:
        return offer.modes[0]
    return job_mode(row.tenant, row.job_id) if job_mode is not None else None


def tco_from_rows(rows: list[LedgerEntry], catalog: Catalog, start: date, end: date, tenant: str | None,
                  job_mode: Callable[[str, str], Mode | None] | None = None) -> TcoReport:
    veo = catalog.get(VEO_BASELINE)  # a catalog without it prices nothing on Veo: "not possible", not an error
    animatediff = catalog.get(STATIC_LOCAL)
    local_offers = [o for o in catalog.offers if o.provider is ProviderKind.LOCAL]
    delivered = [row for row in rows if row.outcome == SUCCEEDED]
    videos = [video_of(row, mode_for(row, catalog, job_mode)) for row in delivered]
    on_veo = [veo_cost(veo, v) for v in videos]
    on_local = [local_cost(local_offers, v) for v in videos]
    by_rule = [static_rule_cost(animatediff, veo, v) for v in videos]

    offers: dict[str, list[Decimal]] = {}
    counts: dict[str, int] = {}
    for row in rows:
        spent = offers.setdefault(row.offer, [Decimal(0), Decimal(0)])
        spent[0 if row.outcome == SUCCEEDED else 1] += row.actual_usd
        counts[row.offer] = counts.get(row.offer, 0) + (row.outcome == SUCCEEDED)
    offer_rows = sorted((TcoOffer(offer=name, videos=counts[name], actual_usd=money(ok),
                                  per_video_usd=_per_video(ok, counts[name]), other_attempts_usd=money(other))
                         for name, (ok, other) in offers.items()), key=lambda o: (-o.videos, o.offer))

    months = []
    for period in periods(start, end):
        picked = [i for i, v in enumerate(videos) if v.period == period]
        paid_month = sum((r.actual_usd for r in rows if day_of(r)[:7] == period), Decimal(0))
        months.append(TcoMonth(
            period=period, videos=len(picked), as_routed_usd=money(paid_month),
            all_veo_usd=money(sum((on_veo[i] or Decimal(0) for i in picked), Decimal(0))),
            all_local_usd=money(sum((on_local[i] or Decimal(0) for i in picked), Decimal(0))),
            not_possible_locally=sum(on_local[i] is None for i in picked),
            static_rule_usd=money(sum((by_rule[i] or Decimal(0) for i in picked), Decimal(0)))))

    paid = sum((row.actual_usd for row in rows), Decimal(0))
    options = [_option("hvr as routed", [Decimal(0)] * len(videos), paid=paid),
               _option(f"all on {VEO_BASELINE}", on_veo), _option("all local", on_local),
               _option("static rule", by_rule)]
    # One GPU box: its local offers share one pricing.
    pricing = next((o.pricing for o in local_offers if isinstance(o.pricing, LocalEnergyPricing)), None)
    gpu = local_gpu_costs(rows, pricing, start, end) if pricing is not None else None
    return TcoReport(start=start, end=end, tenant=tenant, videos=len(videos),
                     mode_unknown=sum(v.mode is None for v in videos), offers=offer_rows, months=months,
                     options=options, local_gpu=gpu, method=METHOD + (_gpu_method(gpu) if gpu else []))


def _gpu_method(gpu: TcoLocalGpu) -> list[str]:
    charged = ("energy only (marginal basis): its depreciation is the fixed cost below, not in the per-video figures"
               if gpu.cost_basis is LocalCostBasis.MARGINAL else
               "energy plus its amortized share of depreciation (full basis); the fixed cost below already "
               "includes that share, so variable spend leaves it out")
    return [f"local GPU renders are charged {charged}",
            "local GPU fixed cost: depreciation per hour x the window's whole days; utilization: GPU-seconds of "
            "the report's local attempts / seconds in those days"]


def tco_report(ledger: LedgerSource, start: date, end: date, tenant: str | None, catalog: Catalog,
               job_mode: Callable[[str, str], Mode | None] | None = None) -> TcoReport:
    """The studio's TCO table, from the ledger's window: see the module docstring and `METHOD`."""
    return tco_from_rows(rows_between(ledger, start, end, tenant), catalog, start, end, tenant, job_mode)
