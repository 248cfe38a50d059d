from decimal import Decimal

import pytest
import yaml

from router.policy.catalog import DEFAULT_CATALOG, CatalogError, load_catalog, parse_catalog


def default_data() -> dict:
    return yaml.safe_load(DEFAULT_CATALOG.read_text())


def test_default_catalog_has_the_studios_local_offers() -> None:
    catalog = load_catalog()
    assert {o.id for o in catalog.offers} == {
        "local/animatediff-sd15", "local/wan21-1.3b", "local/wan21-14b", "local/wan22-14b"}
    assert {o.id: o.quality for o in catalog.offers}["local/animatediff-sd15"] == 3


def test_local_pricing_reproduces_the_studios_per_video_figures() -> None:
    catalog = load_catalog()
    animatediff = catalog.get("local/animatediff-sd15")
    wan14 = catalog.get("local/wan21-14b")
    assert animatediff and wan14
    # 16 frames at the studio's 2-3 and 8-12 min/frame; their own totals are $0.26-0.30 and $0.99-1.16.
    per_s = animatediff.pricing.usd_per_gpu_second
    assert Decimal("0.26") <= per_s * 16 * 150 <= Decimal("0.30")
    assert Decimal("0.99") <= wan14.pricing.usd_per_gpu_second * 16 * 600 <= Decimal("1.16")


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("modes",), ["t2v", "telepathy"], "modes"),
        (("pricing", "usd_per_kwh"), "-0.1", "usd_per_kwh"),
        (("pricing", "source"), "", "source"),
        (("frames", "min"), 500, "frames.min 500 > frames.max"),
        (("fps", "default"), 99, "fps.default"),
        (("latency", "seconds_per_frame_p90"), 1, "p90"),
        (("sizes",), ["511x512"], "even"),
    ],
)
def test_invalid_offer_is_named_with_file_and_field(path: tuple, value: object, expected: str) -> None:
    data = default_data()
    offer = data["offers"][1]
    target = offer
    for key in path[:-1]:
        target[key] = dict(target[key])
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(CatalogError) as info:
        parse_catalog(data, "custom.yaml")
    message = str(info.value)
    assert message.startswith("custom.yaml: offer local/wan21-1.3b:")
    assert expected in message


def test_duplicate_ids_and_missing_dates_are_refused() -> None:
    data = default_data()
    data["offers"].append(dict(data["offers"][0]))
    with pytest.raises(CatalogError, match="duplicate id"):
        parse_catalog(data, "dup.yaml")
    data = default_data()
    data["offers"][0]["pricing"] = {k: v for k, v in data["offers"][0]["pricing"].items() if k != "as_of"}
    with pytest.raises(CatalogError, match="as_of"):
        parse_catalog(data, "nodate.yaml")
