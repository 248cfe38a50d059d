"""Cost reports over hand-made ledger rows: grouping, day windows, tenant scope, exact sums, and the TCO table
checked against figures worked out by hand from the default catalog."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from hvr.cli import format_costs, format_tco
from router.models.common import Mode, ProviderKind, iso
from router.models.ledger import LedgerEntry
from router.models.offer import LocalCostBasis, LocalEnergyPricing, with_local_cost_basis
from router.policy.catalog import Catalog, load_catalog
from router.services.costs import (
    CostReport,
    GroupBy,
    TcoReport,
    WindowError,
    cost_report,
    local_gpu_costs,
    periods,
    report_window,
    rows_between,
    tco_from_rows,
)

MARGINAL = load_catalog()
# The hand-worked TCO figures below are the studio's own method: energy plus depreciation per GPU-second.
CATALOG = Catalog(version=MARGINAL.version, offers=with_local_cost_basis(MARGINAL.offers, LocalCostBasis.FULL))
_ids = iter(range(1_000_000))


def row(ended: str, *, tenant: str = "acme", offer: str = "local/animatediff-sd15", outcome: str = "succeeded",
        actual: str = "0.2800", estimated: str = "0.3000", campaign: str | None = None, resolution: str = "512x512",
        frames: int = 16, seconds: str = "2.0") -> LedgerEntry:
    n = next(_ids)
    end = datetime.fromisoformat(ended.replace("Z", "+00:00"))
    return LedgerEntry(
        tenant=tenant, job_id=f"job_{n}", attempt_id=f"att_{n}", campaign_id=campaign,
        provider=ProviderKind(offer.split("/")[0]), offer=offer, model=offer.split("/")[1], outcome=outcome,
        billed_units={"gpu_seconds": Decimal(0), "output_seconds": Decimal(seconds), "frames": Decimal(frames)},
        unit="gpu_second", unit_price_usd=Decimal("0.0001"), pricing_version="test", estimated_usd=Decimal(estimated),
        actual_usd=Decimal(actual), resolution=resolution, started_at=end - timedelta(minutes=5), ended_at=end)


class FakeLedger:
    """Rows filed by calendar month exactly as LedgerRepository files them (the `period` of their UTC end)."""

    def __init__(self, rows: list[LedgerEntry]) -> None:
        self.rows = rows
        self.asked: list[str] = []

    def for_period(self, period: str) -> list[LedgerEntry]:
        self.asked.append(period)
        return [r for r in self.rows if iso(r.ended_at)[:7] == period]


NOV = (date(2026, 11, 1), date(2026, 11, 30))


def test_groups_by_each_dimension_count_videos_and_sum_every_attempt() -> None:
    rows = [
        row("2026-11-02T10:00:00Z", actual="0.2800", estimated="0.3000", campaign="spring"),
        row("2026-11-02T11:00:00Z", actual="0.0500", estimated="0.0600", outcome="failed", campaign="spring"),
        row("2026-11-03T09:00:00Z", offer="veo/veo-3.1-fast", actual="0.8000", estimated="0.8000",
            resolution="1280x720", frames=192, seconds="8"),
        row("2026-11-04T09:00:00Z", tenant="beta", offer="replicate/wan-2.2-t2v-fast", actual="0.0506",
            estimated="0.0506"),
    ]
    ledger = FakeLedger(rows)

    by_provider = cost_report(ledger, *NOV, GroupBy.PROVIDER, None)
    assert [(g.key, g.videos, g.actual_usd, g.estimated_usd) for g in by_provider.groups] == [
        ("veo", 1, Decimal("0.8000"), Decimal("0.8000")),  # biggest spender first
        ("local", 1, Decimal("0.3300"), Decimal("0.3600")),  # the failed attempt is paid for, but is no video
        ("replicate", 1, Decimal("0.0506"), Decimal("0.0506")),
    ]
    assert by_provider.total_usd == Decimal("1.1806")

    by_offer = cost_report(ledger, *NOV, GroupBy.OFFER, None)
    assert [g.key for g in by_offer.groups] == ["veo/veo-3.1-fast", "local/animatediff-sd15",
                                                "replicate/wan-2.2-t2v-fast"]
    by_tenant = cost_report(ledger, *NOV, GroupBy.TENANT, None)
    assert [(g.key, g.videos, g.actual_usd) for g in by_tenant.groups] == [
        ("acme", 2, Decimal("1.1300")), ("beta", 1, Decimal("0.0506"))]
    by_campaign = cost_report(ledger, *NOV, GroupBy.CAMPAIGN, None)
    assert [(g.key, g.videos, g.actual_usd) for g in by_campaign.groups] == [
        ("-", 2, Decimal("0.8506")), ("spring", 1, Decimal("0.3300"))]
    by_day = cost_report(ledger, *NOV, GroupBy.DAY, None)
    assert [(g.key, g.videos, g.actual_usd) for g in by_day.groups] == [
        ("2026-11-02", 1, Decimal("0.3300")), ("2026-11-03", 1, Decimal("0.8000")),
        ("2026-11-04", 1, Decimal("0.0506"))]  # days in date order, not by spend
    for report in (by_offer, by_tenant, by_campaign, by_day):
        assert report.total_usd == by_provider.total_usd


def test_a_long_videos_segments_count_as_one_video_where_its_last_segment_ends() -> None:
    first, second = row("2026-11-02T23:50:00Z"), row("2026-11-03T00:05:00Z")
    segments = [first, second.model_copy(update={"job_id": first.job_id})]
    by_day = cost_report(FakeLedger([*segments, row("2026-11-03T09:00:00Z")]), *NOV, GroupBy.DAY, None)
    assert [(g.key, g.videos, g.actual_usd) for g in by_day.groups] == [
        ("2026-11-02", 0, Decimal("0.2800")), ("2026-11-03", 2, Decimal("0.5600"))]


def test_window_keeps_whole_utc_days_and_reads_only_the_months_it_touches() -> None:
    rows = [
        row("2026-10-31T23:59:59Z", actual="1.0000"),
        row("2026-11-01T00:00:00Z", actual="0.1000"),
        row("2026-11-01T01:00:00+02:00", actual="2.0000"),  # 23:00 UTC on October 31st
        row("2026-11-30T23:59:59Z", actual="0.0200"),
        row("2026-12-01T00:00:00Z", actual="4.0000"),
    ]
    ledger = FakeLedger(rows)
    report = cost_report(ledger, *NOV, GroupBy.DAY, None)
    assert [(g.key, g.actual_usd) for g in report.groups] == [("2026-11-01", Decimal("0.1000")),
                                                              ("2026-11-30", Decimal("0.0200"))]
    assert report.total_usd == Decimal("0.1200")
    assert ledger.asked == ["2026-11"]

    ledger.asked.clear()
    across = cost_report(ledger, date(2026, 10, 31), date(2026, 12, 1), GroupBy.DAY, None)
    assert across.total_usd == Decimal("7.1200")
    assert ledger.asked == ["2026-10", "2026-11", "2026-12"]
    one_day = rows_between(ledger, date(2026, 10, 31), date(2026, 10, 31))
    assert sorted(r.actual_usd for r in one_day) == [Decimal("1.0000"), Decimal("2.0000")]


def test_a_tenant_sees_only_its_own_rows() -> None:
    rows = [row("2026-11-02T10:00:00Z", tenant="acme", actual="0.2800"),
            row("2026-11-02T10:00:00Z", tenant="beta", actual="0.5000"),
            row("2026-11-03T10:00:00Z", tenant="beta", actual="0.0100", offer="veo/veo-3.1-fast")]
    beta = cost_report(FakeLedger(rows), *NOV, GroupBy.PROVIDER, "beta")
    assert beta.tenant == "beta"
    assert [(g.key, g.videos, g.actual_usd) for g in beta.groups] == [("local", 1, Decimal("0.5000")),
                                                                      ("veo", 1, Decimal("0.0100"))]
    assert beta.total_usd == Decimal("0.5100")
    assert cost_report(FakeLedger(rows), *NOV, GroupBy.PROVIDER, "nobody").groups == []
    only_veo = cost_report(FakeLedger(rows), *NOV, GroupBy.TENANT, None, provider=ProviderKind.VEO)
    assert [(g.key, g.actual_usd) for g in only_veo.groups] == [("beta", Decimal("0.0100"))]


def test_sums_are_exact_to_the_cent_and_serialized_as_decimal_strings() -> None:
    # 0.1 has no exact binary form: a float sum of ten of them is 0.9999999999999999.
    rows = [row(f"2026-11-{day:02d}T12:00:00Z", actual="0.1000", estimated="0.0001") for day in range(1, 11)]
    rows += [row("2026-11-11T12:00:00Z", actual="0.0001", estimated="0.0001")] * 3
    report = cost_report(FakeLedger(rows), *NOV, GroupBy.PROVIDER, None)
    assert report.total_usd == Decimal("1.0003")
    body = report.model_dump(mode="json")
    assert body["from"] == "2026-11-01" and body["to"] == "2026-11-30" and body["group_by"] == "provider"
    assert body["groups"] == [{"key": "local", "videos": 13, "actual_usd": "1.0003", "estimated_usd": "0.0013"}]
    assert body["total_usd"] == "1.0003" and body["tenant"] is None


def test_the_cli_table_shows_what_the_api_returns() -> None:
    rows = [row("2026-11-02T10:00:00Z", actual="0.2800", estimated="0.3000"),
            row("2026-11-02T10:00:00Z", tenant="beta", actual="12.5000", estimated="11.0000",
                offer="veo/veo-3.1-fast")]
    sent = cost_report(FakeLedger(rows), *NOV, GroupBy.TENANT, None).model_dump(mode="json")
    text = format_costs(CostReport.model_validate(sent))  # as the CLI reads the API's answer
    lines = text.splitlines()
    assert lines[0] == "costs 2026-11-01 to 2026-11-30, all tenants, by tenant"
    assert lines[2].split() == ["tenant", "videos", "actual", "estimated"]
    assert lines[3].split() == ["beta", "1", "$12.5000", "$11.0000"]
    assert lines[4].split() == ["acme", "1", "$0.2800", "$0.3000"]
    assert lines[3].index("$12.5000") < lines[4].index("$0.2800")  # figures right-aligned
    assert lines[-1] == "total: $12.7800"


def test_report_window_defaults_and_refusals() -> None:
    today = date(2026, 11, 25)
    assert report_window(None, None, today) == (date(2026, 11, 1), today)
    assert report_window(date(2026, 10, 5), None, today) == (date(2026, 10, 5), today)
    assert report_window(None, date(2026, 9, 20), today) == (date(2026, 9, 1), date(2026, 9, 20))
    assert report_window(date(2027, 1, 2), None, today) == (date(2027, 1, 2), date(2027, 1, 2))
    with pytest.raises(WindowError) as backwards:
        report_window(date(2026, 11, 2), date(2026, 11, 1), today)
    assert backwards.value.field == "to"
    with pytest.raises(WindowError) as too_long:
        report_window(date(2025, 1, 1), date(2026, 1, 2), today)  # 367 days
    assert too_long.value.field == "to"
    assert report_window(date(2025, 1, 1), date(2026, 1, 1), today)[1] == date(2026, 1, 1)  # 366 days: allowed
    assert periods(date(2025, 12, 15), date(2026, 2, 1)) == ["2025-12", "2026-01", "2026-02"]


# --- TCO -----------------------------------------------------------------------------------------------------------
# Local pricing: (0.9 kW x $0.12/kWh + $0.30/h depreciation) / 3600 = $0.408/3600 per GPU-second; p50 latency.


def tco_rows() -> list[LedgerEntry]:
    return [
        # AnimateDiff 512x512, 16 frames (2 s at 8 fps).
        row("2026-11-02T10:00:00Z", offer="local/animatediff-sd15", actual="0.2800"),
        # WAN 2.2 fast on Replicate, 832x480, 81 frames at 16 fps = 5.0625 s.
        row("2026-10-20T10:00:00Z", offer="replicate/wan-2.2-t2v-fast", actual="0.0506", resolution="832x480",
            frames=81, seconds="5.0625"),
        # WAN 2.6 on RunPod, 1920x1080, 15 s at 24 fps ($0.15/s x 15).
        row("2026-11-05T10:00:00Z", offer="runpod/wan-2-6-t2v", actual="2.2500", resolution="1920x1080",
            frames=360, seconds="15"),
        # A failed attempt: paid (50 GPU-seconds at $0.00116), no video.
        row("2026-11-06T10:00:00Z", offer="runpod/wan22-14b-comfy", outcome="failed", actual="0.0580",
            resolution="1280x720", frames=81, seconds="5.0625"),
        row("2026-09-30T10:00:00Z", actual="9.9900"),  # outside the window
    ]


def test_tco_matches_hand_computation() -> None:
    ledger = FakeLedger(tco_rows())
    start, end = date(2026, 10, 15), date(2026, 11, 30)
    report = tco_from_rows(rows_between(ledger, start, end), CATALOG, start, end, None)
    assert report.videos == 3 and report.mode_unknown == 0  # all three offers are single-mode t2v

    assert [(o.offer, o.videos, o.actual_usd, o.per_video_usd, o.other_attempts_usd) for o in report.offers] == [
        ("local/animatediff-sd15", 1, Decimal("0.2800"), Decimal("0.2800"), Decimal("0.0000")),
        ("replicate/wan-2.2-t2v-fast", 1, Decimal("0.0506"), Decimal("0.0506"), Decimal("0.0000")),
        ("runpod/wan-2-6-t2v", 1, Decimal("2.2500"), Decimal("2.2500"), Decimal("0.0000")),
        ("runpod/wan22-14b-comfy", 0, Decimal("0.0000"), None, Decimal("0.0580")),
    ]

    # Per video, by hand:
    #   AnimateDiff 2 s 512px: Veo has no 512 tier -> 720p $0.10/s, shortest Veo length 4 s -> $0.40.
    #     Local: AnimateDiff only (no other local offer has a 512 tier): 20 + 150 x 16 = 2420 GPU-s -> $0.2743.
    #     Static rule: small text-to-video -> AnimateDiff, $0.2743.
    #   WAN 480p 5.0625 s: Veo 720p, 6 s -> $0.60. Local: wan21-1.3b at 832x480, 16 fps, 81 frames:
    #     30 + 240 x 81 = 19470 GPU-s -> $2.2066 (wan21-14b: 60 + 600 x 81 x 0.4333 = 21120 -> $2.3936).
    #     Static rule: 832 px > 512 -> Veo, $0.60.
    #   WAN 1080p 15 s: Veo 1080p $0.12/s, longer than any Veo clip -> by the second, 15 s -> $1.80.
    #     Local: wan22-14b renders at most 257 frames = 10.7 s at 24 fps, outside 15 s +- 3.75 s -> not possible.
    oct_, nov = report.months
    assert (oct_.period, oct_.videos, oct_.as_routed_usd, oct_.all_veo_usd, oct_.all_local_usd,
            oct_.not_possible_locally, oct_.static_rule_usd) == (
        "2026-10", 1, Decimal("0.0506"), Decimal("0.6000"), Decimal("2.2066"), 0, Decimal("0.6000"))
    assert (nov.period, nov.videos, nov.as_routed_usd, nov.all_veo_usd, nov.all_local_usd,
            nov.not_possible_locally, nov.static_rule_usd) == (
        "2026-11", 2, Decimal("2.5880"), Decimal("2.2000"), Decimal("0.2743"), 1, Decimal("2.0743"))

    options = {o.option: o for o in report.options}
    assert list(options) == ["hvr as routed", "all on veo/veo-3.1-fast", "all local", "static rule"]
    routed = options["hvr as routed"]  # 0.2800 + 0.0506 + 2.2500 + 0.0580 (the failure) = 2.6386 over 3 videos
    assert (routed.videos, routed.total_usd, routed.per_video_usd, routed.monthly_usd_at_1000,
            routed.yearly_usd_at_1000) == (3, Decimal("2.6386"), Decimal("0.8795"), Decimal("879.5333"),
                                           Decimal("10554.4000"))
    veo = options["all on veo/veo-3.1-fast"]  # 0.40 + 0.60 + 1.80
    assert (veo.videos, veo.total_usd, veo.per_video_usd, veo.monthly_usd_at_1000, veo.yearly_usd_at_1000) == (
        3, Decimal("2.8000"), Decimal("0.9333"), Decimal("933.3333"), Decimal("11200.0000"))
    local = options["all local"]  # 0.2743 + 2.2066 over the 2 possible videos
    assert (local.videos, local.not_possible, local.total_usd, local.per_video_usd, local.monthly_usd_at_1000,
            local.yearly_usd_at_1000) == (2, 1, Decimal("2.4809"), Decimal("1.2405"), Decimal("1240.4500"),
                                          Decimal("14885.4000"))
    static = options["static rule"]  # 0.2743 + 0.60 + 1.80
    assert (static.videos, static.total_usd, static.per_video_usd, static.monthly_usd_at_1000) == (
        3, Decimal("2.6743"), Decimal("0.8914"), Decimal("891.4333"))
    body = report.model_dump(mode="json")
    assert body["from"] == "2026-10-15" and body["options"][1]["per_video_usd"] == "0.9333"


def test_tco_asks_the_job_for_the_mode_of_multi_mode_offers_on_rows_without_one() -> None:
    # Veo renders t2v and i2v: a row written before the ledger kept the mode can't say which; the job can.
    rows = [row("2026-11-02T10:00:00Z", offer="veo/veo-3.1-fast", actual="0.4000", resolution="512x512",
                frames=48, seconds="2.0")]
    asked: list[tuple[str, str]] = []

    def job_mode(mode: Mode | None) -> Callable[[str, str], Mode | None]:
        def lookup(tenant: str, job_id: str) -> Mode | None:
            asked.append((tenant, job_id))
            return mode
        return lookup

    as_t2v = tco_from_rows(rows, CATALOG, *NOV, None, job_mode(Mode.T2V))
    assert asked == [("acme", rows[0].job_id)]
    # 512 px text-to-video: the static rule and all-local both take AnimateDiff, 2 s at 8 fps = 16 frames, $0.2743.
    assert [o.total_usd for o in as_t2v.options[2:]] == [Decimal("0.2743"), Decimal("0.2743")]
    as_i2v = tco_from_rows(rows, CATALOG, *NOV, None, job_mode(Mode.I2V))
    # Image-to-video at 512 px: AnimateDiff can't, no local offer has a 512 tier, and the static rule sends it to Veo.
    assert as_i2v.options[2].not_possible == 1
    assert as_i2v.options[3].total_usd == Decimal("0.4000")
    gone = tco_from_rows(rows, CATALOG, *NOV, None, job_mode(None))
    assert gone.mode_unknown == 1 and gone.options[2].not_possible == 1


def test_tco_takes_the_mode_from_the_row_without_asking() -> None:
    rows = [row("2026-11-02T10:00:00Z", offer="veo/veo-3.1-fast", actual="0.4000", resolution="512x512",
                frames=48, seconds="2.0").model_copy(update={"mode": Mode.I2V})]

    def never(tenant: str, job_id: str) -> Mode | None:
        raise AssertionError("the row has its mode; no job lookup")

    report = tco_from_rows(rows, CATALOG, *NOV, None, never)
    assert report.mode_unknown == 0 and report.options[2].not_possible == 1  # i2v at 512 px: nothing local


def test_tco_with_no_videos_has_no_per_video_figures() -> None:
    failed = [row("2026-11-06T10:00:00Z", offer="runpod/wan22-14b-comfy", outcome="failed", actual="0.0580")]
    report = tco_from_rows(failed, CATALOG, *NOV, "acme", None)
    routed = report.options[0]
    assert report.videos == 0 and routed.total_usd == Decimal("0.0580") and routed.per_video_usd is None
    assert all(o.per_video_usd is None and o.total_usd == 0 for o in report.options[1:])


# --- the owned GPU: marginal basis, fixed cost, utilization ----------------------------------------------------------
# AnimateDiff 16 frames, 2,420 GPU-s: energy 2420 x 0.9 kW x $0.12/kWh / 3600 = $0.0726; its depreciation share
# 2420 x $0.30/h / 3600 = $0.2017; charged $0.0726 on the marginal basis, $0.2743 on the full one.


def local_row(basis: LocalCostBasis | None, actual: str) -> LedgerEntry:
    kept = {"cost_basis": basis, "energy_usd": Decimal("0.0726"), "amortized_usd": Decimal("0.2017")} if basis else {}
    return row("2026-11-02T10:00:00Z", actual=actual).model_copy(update={
        "billed_units": {"gpu_seconds": Decimal(2420), "output_seconds": Decimal("2.0"), "frames": Decimal(16)},
        **kept})


def wan_row() -> LedgerEntry:
    return row("2026-11-03T10:00:00Z", offer="replicate/wan-2.2-t2v-fast", actual="0.0506", resolution="832x480",
               frames=81, seconds="5.0625")


def test_on_the_marginal_basis_local_renders_cost_energy_and_the_gpu_is_a_fixed_cost_beside_them() -> None:
    report = tco_from_rows([local_row(LocalCostBasis.MARGINAL, "0.0726"), wan_row()], MARGINAL, *NOV, None)
    gpu = report.local_gpu
    assert gpu is not None and gpu.cost_basis is LocalCostBasis.MARGINAL
    # $0.30/h: 730 h in an average month, 720 h in November's 30 days.
    assert (gpu.fixed_monthly_usd, gpu.fixed_usd) == (Decimal("219.0000"), Decimal("216.0000"))
    assert (gpu.variable_usd, gpu.local_energy_usd, gpu.charged_to_renders_usd, gpu.total_usd) == (
        Decimal("0.1232"), Decimal("0.0726"), Decimal("0.0000"), Decimal("216.1232"))
    assert gpu.busy_gpu_seconds == 2420 and gpu.period_seconds == 30 * 86400
    assert gpu.utilization == pytest.approx(2420 / (30 * 86400), abs=1e-6)
    # The counterfactual "all local" is priced on the same basis: energy only (19,470 GPU-s for the WAN clip).
    assert report.options[2].total_usd == Decimal("0.0726") + Decimal("0.5841")
    text = format_tco(TcoReport.model_validate(report.model_dump(mode="json")))
    assert "local GPU (marginal basis): fixed $219.0000/month ($0.30/h depreciation), $216.0000 over this window" \
        in text
    assert "variable spend $0.1232 (local energy $0.0726) + fixed $216.0000 = $216.1232" in text
    assert "utilization 0.1 % (0.7 GPU-busy hours of 720)" in text


@pytest.mark.parametrize("basis, actual", [(LocalCostBasis.FULL, "0.2743"), (None, "0.2743")])
def test_depreciation_charged_to_renders_is_counted_once(basis: LocalCostBasis | None, actual: str) -> None:
    # Full basis, or a row from before the ledger kept the shares apart (charged the full cost then): the variable
    # spend and the total are those of the marginal basis; only who carried the depreciation differs.
    offer = CATALOG.get("local/animatediff-sd15")
    assert offer is not None and isinstance(offer.pricing, LocalEnergyPricing)
    gpu = local_gpu_costs([local_row(basis, actual), wan_row()], offer.pricing, *NOV)
    assert gpu.charged_to_renders_usd == Decimal("0.2017")
    assert (gpu.variable_usd, gpu.total_usd) == (Decimal("0.1232"), Decimal("216.1232"))


def test_a_catalog_without_a_local_gpu_reports_none() -> None:
    cloud = tuple(o for o in MARGINAL.offers if o.provider is not ProviderKind.LOCAL)
    cloud_only = Catalog(version="cloud", offers=cloud)
    assert tco_from_rows([wan_row()], cloud_only, *NOV, None).local_gpu is None
