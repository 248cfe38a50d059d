import copy
from datetime import date
from decimal import Decimal

import pytest
import yaml

from router.models.common import Mode, ProviderKind
from router.models.offer import LocalCostBasis, LocalEnergyPricing, unit_price, with_local_cost_basis
from router.policy.catalog import DEFAULT_CATALOG, CatalogError, load_catalog, parse_catalog

# Every system the studio's comparison and issue 4 name: one offer each.
EXPECTED_IDS = {
    "local/animatediff-sd15", "local/wan21-1.3b", "local/wan21-14b", "local/wan22-14b", "local/wan22-s2v-14b",
    "local/wan22-5b-ti2v",
    "runpod/wan-2-1-i2v-720", "runpod/wan-2-2-i2v-720", "runpod/wan-2-5", "runpod/wan-2-6-t2v", "runpod/wan-2-6-i2v",
    "runpod/infinitetalk", "runpod/wan22-14b-comfy",
    "replicate/wan-2.2-t2v-fast", "replicate/wan-2.2-i2v-fast", "replicate/wan-2.1-t2v-480p",
    "replicate/wan-2.1-i2v-480p", "replicate/wan-2.1-i2v-720p", "replicate/wan-2.2-s2v",
    "veo/veo-2.0", "veo/veo-3.0", "veo/veo-3.0-fast", "veo/veo-3.1", "veo/veo-3.1-fast", "veo/veo-3.1-lite",
}
CATALOG = load_catalog()
OFFERS = {offer.id: offer for offer in CATALOG.offers}


def default_data() -> dict:
    return yaml.safe_load(DEFAULT_CATALOG.read_text())


def with_change(offer_id: str, path: tuple, value: object) -> dict:
    """The default catalog's data with one field of one offer changed (a deep copy: YAML anchors share objects)."""
    data = default_data()
    index = next(i for i, raw in enumerate(data["offers"]) if raw["id"] == offer_id)
    offer = data["offers"][index] = copy.deepcopy(data["offers"][index])
    target = offer
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def refused(data: dict, offer_id: str) -> str:
    with pytest.raises(CatalogError) as info:
        parse_catalog(data, "custom.yaml")
    message = str(info.value)
    assert message.startswith(f"custom.yaml: offer {offer_id}:"), message
    return message


def deliverable(offer_id: str) -> list[tuple[int, int, float]]:
    """(width, height, duration) the offer can render: its sizes by its listed durations (or one frame-limited one)."""
    offer = OFFERS[offer_id]
    if offer.frames.durations_s:
        durations = [offer.frames.snap_duration(d) for d in offer.frames.durations_s]
    else:
        durations = [offer.frames.snap(5 * offer.fps.default) / offer.fps.default]
    return [(w, h, d) for w, h in offer.size_list for d in durations if d is not None]


# --- the default catalog ---------------------------------------------------------------------------------------

def test_every_system_the_issue_names_is_an_offer_once() -> None:
    ids = [offer.id for offer in CATALOG.offers]
    assert len(ids) == len(set(ids))
    assert set(ids) >= EXPECTED_IDS, EXPECTED_IDS - set(ids)
    assert len(ids) >= 25
    for offer in CATALOG.offers:
        assert offer.id.split("/", 1)[0] == offer.provider.value


def test_default_catalog_keeps_the_studios_local_offers_with_their_modes() -> None:
    local = {o.id: o for o in CATALOG.offers if o.provider is ProviderKind.LOCAL}
    assert {"local/animatediff-sd15", "local/wan21-1.3b", "local/wan21-14b", "local/wan22-14b"} <= set(local)
    modes = {offer_id: set(offer.modes) for offer_id, offer in local.items()}
    assert modes["local/animatediff-sd15"] == {Mode.T2V}
    assert modes["local/wan21-1.3b"] == {Mode.T2V, Mode.I2V, Mode.CAMERA, Mode.INPAINT}
    assert modes["local/wan21-14b"] == {Mode.T2V, Mode.I2V, Mode.S2V, Mode.CAMERA, Mode.INPAINT}
    # WAN's fine-tuned families (issue 17): one offer each; extend has none yet.
    assert modes["local/wan21-phantom-14b"] == {Mode.R2V}
    assert modes["local/wan21-flf2v-14b"] == {Mode.FLF2V}
    assert modes["local/wan22-animate-14b"] == {Mode.ANIMATE}
    assert modes["local/humo-17b"] == {Mode.S2V}
    assert not any(Mode.EXTEND in offer_modes for offer_modes in modes.values())
    assert modes["local/wan22-14b"] >= {Mode.T2V, Mode.I2V}
    assert modes["local/wan22-s2v-14b"] == {Mode.S2V}
    assert modes["local/wan22-5b-ti2v"] == {Mode.T2V, Mode.I2V}
    # The studio's quality stars.
    assert {i: local[i].quality for i in ("local/animatediff-sd15", "local/wan21-1.3b", "local/wan21-14b",
                                          "local/wan22-14b")} == {
        "local/animatediff-sd15": 3, "local/wan21-1.3b": 4, "local/wan21-14b": 5, "local/wan22-14b": 5}


def test_local_pricing_reproduces_the_studios_per_video_figures() -> None:
    animatediff = OFFERS["local/animatediff-sd15"]
    wan14 = OFFERS["local/wan21-14b"]
    # 16 frames at the studio's 2-3 and 8-12 min/frame; their own totals are $0.26-0.30 and $0.99-1.16, energy
    # and depreciation together (the full basis).
    per_s = unit_price(animatediff.pricing, 512, 2.0, basis=LocalCostBasis.FULL)
    assert per_s is not None and per_s[0] == "gpu_second"
    assert Decimal("0.26") <= per_s[1] * 16 * Decimal(str(animatediff.latency.seconds_per_frame_p50)) <= Decimal("0.30")
    wan_s = unit_price(wan14.pricing, 720, 1.0, basis=LocalCostBasis.FULL)
    assert wan_s is not None
    assert Decimal("0.99") <= wan_s[1] * 16 * Decimal(str(wan14.latency.seconds_per_frame_p50)) <= Decimal("1.16")


def test_local_gpu_seconds_cost_energy_by_default_and_full_cost_on_request() -> None:
    # 0.9 kW x $0.12/kWh = $0.108/h of energy; + $0.30/h depreciation = $0.408/h on the full basis.
    local = OFFERS["local/wan21-1.3b"]
    assert isinstance(local.pricing, LocalEnergyPricing) and local.pricing.cost_basis is LocalCostBasis.MARGINAL
    assert local.price_for(832, 480, 5.0) == ("gpu_second", Decimal("0.108") / 3600)
    assert unit_price(local.pricing, 480, 5.0, basis=LocalCostBasis.FULL) == ("gpu_second", Decimal("0.408") / 3600)
    full = {o.id: o for o in with_local_cost_basis(CATALOG.offers, "full")}
    assert full["local/wan21-1.3b"].price_for(832, 480, 5.0) == ("gpu_second", Decimal("0.408") / 3600)
    # Cloud offers are the very same objects: the basis is about the owned GPU only.
    assert all(full[o.id] is o for o in CATALOG.offers if o.provider is not ProviderKind.LOCAL)
    assert with_local_cost_basis(CATALOG.offers, LocalCostBasis.MARGINAL) == CATALOG.offers


def test_the_5b_estimate_is_flagged_and_sits_between_the_studios_small_and_large_wan() -> None:
    five_b = OFFERS["local/wan22-5b-ti2v"]
    assert "estimate" in five_b.latency.source
    assert five_b.sizes == ["1280x704", "704x1280"] and five_b.fps.default == 24 and five_b.frames.max == 121
    assert five_b.latency.seconds_per_frame_p50 < OFFERS["local/wan22-14b"].latency.seconds_per_frame_p50


def test_every_price_names_a_source_and_the_date_of_its_figure() -> None:
    for offer in CATALOG.offers:
        pricing = offer.pricing
        assert len(pricing.source) >= 10, offer.id
        assert pricing.as_of <= date(2026, 11, 24), f"{offer.id}: as_of is the catalog's date, not the figure's"
        assert len(offer.latency.source) >= 10, offer.id
        if "third-party" in pricing.source:
            assert "unverified" in pricing.source, offer.id


@pytest.mark.parametrize("offer_id", sorted(EXPECTED_IDS))
def test_no_offer_is_unpriceable(offer_id: str) -> None:
    cases = deliverable(offer_id)
    assert cases, offer_id
    for width, height, duration in cases:
        price = unit_price(OFFERS[offer_id].pricing, min(width, height), duration)
        assert price is not None, f"{offer_id}: no price for {width}x{height} at {duration:g} s"
        assert price[1] > 0


@pytest.mark.parametrize(
    ("offer_id", "tier", "duration", "expected"),
    [
        ("runpod/wan-2-2-i2v-720", 720, 8, ("video", "0.48")),
        ("runpod/wan-2-5", 1080, 10, ("video", "1.50")),
        ("runpod/wan-2-6-t2v", 1080, 15, ("output_second", "0.15")),
        ("runpod/infinitetalk", 720, 6, ("video", "0.50")),
        ("runpod/wan22-14b-comfy", 720, 5, ("gpu_second", "0.00116")),
        ("veo/veo-3.1-fast", 1080, 8, ("output_second", "0.12")),
        ("veo/veo-2.0", 720, 7, ("output_second", "0.35")),
        ("replicate/wan-2.2-t2v-fast", 480, 5.0625, ("output_second", "0.01")),
    ],
)
def test_stated_prices(offer_id: str, tier: int, duration: float, expected: tuple[str, str]) -> None:
    assert unit_price(OFFERS[offer_id].pricing, tier, duration) == (expected[0], Decimal(expected[1]))


def test_cloud_offers_deliver_what_their_providers_state() -> None:
    veo3 = OFFERS["veo/veo-3.1"]
    assert veo3.frames.durations_s == [4, 6, 8] and veo3.fps.default == 24
    assert set(veo3.sizes) == {"1280x720", "720x1280", "1920x1080", "1080x1920"}
    assert OFFERS["veo/veo-2.0"].frames.durations_s == [5, 6, 7, 8]
    assert OFFERS["runpod/wan-2-2-i2v-720"].frames.durations_s == [5, 8, 10, 15]
    fast = OFFERS["replicate/wan-2.2-t2v-fast"]
    assert (fast.frames.min, fast.frames.max, fast.fps.default) == (81, 100, 16)
    assert fast.model == "wan-video/wan-2.2-t2v-fast"
    assert OFFERS["veo/veo-3.1-fast"].model == "veo-3.1-fast-generate-001"
    assert OFFERS["runpod/wan-2-2-i2v-720"].model == "wan-2-2-i2v-720"
    comfy = OFFERS["runpod/wan22-14b-comfy"]
    assert comfy.pricing.kind == "gpu_second" and comfy.latency.cold_start_s > 0
    for offer in CATALOG.offers:
        if offer.provider is ProviderKind.VEO:
            assert offer.aspect_ratios and all(a.value in ("16:9", "9:16") for a in offer.aspect_ratios)
            assert offer.quality == (4 if offer.id == "veo/veo-3.1-lite" else 5)
        # Every listed duration renders within the frame limits at the offer's fps.
        for duration in offer.frames.durations_s or []:
            frames = offer.frames.snap(duration * offer.fps.default)
            assert abs(frames / offer.fps.default - duration) < 0.2, (offer.id, duration)


def test_lipsync_offers_exist_on_every_provider_but_veo() -> None:
    speech = {o.provider for o in CATALOG.offers if Mode.S2V in o.modes}
    assert speech == {ProviderKind.LOCAL, ProviderKind.RUNPOD, ProviderKind.REPLICATE}


# --- refused at load, naming file and offer ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("modes",), ["t2v", "telepathy"], "modes"),
        (("pricing", "usd_per_kwh"), "-0.1", "usd_per_kwh"),
        (("pricing", "source"), "", "source"),
        (("frames", "min"), 500, "frames.min 500 > frames.max"),
        (("fps", "default"), 99, "fps.default"),
        (("fps", "min"), 40, "fps"),   # fps.min 40 > fps.max 30
        (("latency", "seconds_per_frame_p90"), 1, "p90"),
        (("sizes",), ["511x512"], "even"),
    ],
)
def test_invalid_offer_is_named_with_file_and_field(path: tuple, value: object, expected: str) -> None:
    assert expected in refused(with_change("local/wan21-1.3b", path, value), "local/wan21-1.3b")


@pytest.mark.parametrize(
    ("offer_id", "path", "value", "expected"),
    [
        ("veo/veo-3.1", ("pricing",), {"kind": "per_second", "usd_per_second": {720: "-0.40", 1080: "0.40"},
                                        "source": "somewhere", "as_of": "2026-05-01"}, "usd_per_second"),
        ("runpod/wan-2-5", ("pricing", "table", 0, "usd"), "-0.25", "usd"),
        ("runpod/wan22-14b-comfy", ("pricing", "usd_per_gpu_second"), "0", "usd_per_gpu_second"),
        ("replicate/wan-2.1-t2v-480p", ("pricing", "kind"), "per_minute", "pricing"),
    ],
)
def test_negative_or_unknown_cloud_prices_are_refused(offer_id: str, path: tuple, value: object, expected: str) -> None:
    assert expected in refused(with_change(offer_id, path, value), offer_id)


@pytest.mark.parametrize("field", ["source", "as_of"])
@pytest.mark.parametrize("offer_id", ["runpod/wan-2-2-i2v-720", "veo/veo-3.1-fast", "replicate/wan-2.2-s2v",
                                      "runpod/wan22-14b-comfy"])
def test_a_cloud_price_without_source_or_date_is_refused(offer_id: str, field: str) -> None:
    data = default_data()
    index = next(i for i, raw in enumerate(data["offers"]) if raw["id"] == offer_id)
    offer = data["offers"][index] = copy.deepcopy(data["offers"][index])
    del offer["pricing"][field]
    assert field in refused(data, offer_id)


def test_a_duration_the_frame_limits_cannot_hold_is_refused() -> None:
    # Veo 3.x renders 96-192 frames at 24 fps: 20 s would be 480.
    message = refused(with_change("veo/veo-3.1", ("frames", "durations_s"), [4, 6, 8, 20]), "veo/veo-3.1")
    assert "20 s at 24 fps is 480 frames, outside frames 96-192" in message
    # WAN at 16 fps: 5 s is 80 frames, which 4n+1 rounds to the 81 minimum — allowed; 3 s (48) is not.
    message = refused(with_change("runpod/wan-2-2-i2v-720", ("frames", "durations_s"), [3, 5]),
                      "runpod/wan-2-2-i2v-720")
    assert "3 s at 16 fps is 48 frames" in message
    message = refused(with_change("veo/veo-2.0", ("frames", "durations_s"), [5, 5, 8]), "veo/veo-2.0")
    assert "duplicate" in message


def test_sizes_and_lengths_without_a_price_are_refused() -> None:
    message = refused(with_change("veo/veo-3.1-lite", ("sizes",), ["1280x720", "1920x1080"]), "veo/veo-3.1-lite")
    assert "no price for the 1080 tier" in message
    data = with_change("runpod/wan-2-5", ("frames", "durations_s"), [5, 8, 10])
    assert "no price for the 480 tier at 8 s" in refused(data, "runpod/wan-2-5")
    data = with_change("runpod/wan-2-2-i2v-720", ("frames", "durations_s"), [5, 8, 10])
    assert "15 s is priced but not in frames.durations_s" in refused(data, "runpod/wan-2-2-i2v-720")
    data = with_change("runpod/wan-2-2-i2v-720", ("frames", "durations_s"), None)
    assert "needs frames.durations_s" in refused(data, "runpod/wan-2-2-i2v-720")


def test_duplicate_ids_and_missing_dates_are_refused() -> None:
    data = default_data()
    data["offers"].append(dict(data["offers"][0]))
    with pytest.raises(CatalogError, match="duplicate id"):
        parse_catalog(data, "dup.yaml")
    data = default_data()
    data["offers"][0]["pricing"] = {k: v for k, v in data["offers"][0]["pricing"].items() if k != "as_of"}
    with pytest.raises(CatalogError, match="as_of"):
        parse_catalog(data, "nodate.yaml")


def test_load_errors_name_the_file(tmp_path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("version: x\noffers: {not: a list}\n")
    with pytest.raises(CatalogError, match=r"broken\.yaml"):
        load_catalog(path)


def test_a_copy_of_an_offer_prices_on_its_own_terms_after_the_original_was_priced() -> None:
    # price_for remembers its answers per offer; a model_copy (another cost basis) must not inherit them.
    local = next(o for o in load_catalog().offers if o.provider is ProviderKind.LOCAL)
    marginal = local.price_for(512, 512, 2.0)
    full = with_local_cost_basis([local], "full")[0]
    assert full.price_for(512, 512, 2.0) != marginal
    assert full.price_for(512, 512, 2.0) == full.model_copy().price_for(512, 512, 2.0)
    assert local.price_for(512, 512, 2.0) == marginal
