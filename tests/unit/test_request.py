from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from router.models.request import VideoRequest, field_errors

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BASE = {"mode": "t2v", "prompt": "a red balloon"}


def refused_field(body: dict) -> str:
    with pytest.raises(ValidationError) as info:
        VideoRequest.parse_at_edge(body, NOW)
    return field_errors(info.value)[0]["field"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mode": "dance"}, "mode"),
        ({"resolution": "99999x1"}, "resolution"),
        ({"resolution": "641x480"}, "resolution"),
        ({"duration_s": 0}, "duration_s"),
        ({"duration_s": -3}, "duration_s"),
        ({"duration_s": 61}, "duration_s"),
        ({"fps": 2}, "fps"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 100_000}, "prompt"),
        ({"deadline": "2026-11-25T11:00:00Z"}, "deadline"),
        ({"deadline": "2026-11-26T11:00:00"}, "deadline"),
        ({"deadline": "2026-11-26T11:00:00Z", "deadline_s": 60}, "deadline_s"),
        ({"mode": "i2v"}, "image"),
        ({"mode": "camera"}, "image"),
        ({"mode": "s2v", "image": "s3://b/i.png"}, "audio"),
        ({"mode": "inpaint", "image": "s3://b/i.png"}, "mask"),
        ({"image": "ftp://x/y.png"}, "image"),
        ({"callback_url": "http://example.com/hook"}, "callback_url"),
        ({"callback_url": "https://127.0.0.1/hook"}, "callback_url"),
        ({"callback_url": "https://[::1]/hook"}, "callback_url"),
        ({"callback_url": "https://localhost/hook"}, "callback_url"),
        ({"colour": "red"}, "colour"),
        ({"max_cost_usd": "0"}, "max_cost_usd"),
        ({"providers": ["local", "local"]}, "providers"),
        ({"providers": ["aws"]}, "providers.0"),
        ({"camera": {"motion": "zoom_in", "speed": 5}}, "camera.speed"),
        ({"metadata": {"blob": "x" * 5000}}, "metadata"),
    ],
)
def test_bad_input_names_the_field(change: dict, field: str) -> None:
    assert refused_field({**BASE, **change}) == field


def test_named_sizes_follow_aspect_ratio() -> None:
    sizes = {
        (res, ar): VideoRequest.parse_at_edge({**BASE, "resolution": res, "aspect_ratio": ar}, NOW).size()
        for res in ("480p", "720p", "1080p") for ar in ("16:9", "9:16", "1:1")
    }
    assert sizes[("480p", "16:9")] == (854, 480)
    assert sizes[("720p", "9:16")] == (720, 1280)
    assert sizes[("1080p", "1:1")] == (1080, 1080)
    assert VideoRequest.parse_at_edge({**BASE, "resolution": "512X512"}, NOW).size() == (512, 512)


def test_deadline_s_resolves_from_acceptance_and_stored_requests_reload_after_deadline() -> None:
    request = VideoRequest.parse_at_edge({**BASE, "deadline": "2026-11-25T13:00:00Z"}, NOW)
    # Re-reading a stored request after its deadline must not fail: only the edge checks the clock.
    assert VideoRequest.model_validate_json(request.model_dump_json()) == request
    relative = VideoRequest.parse_at_edge({**BASE, "deadline_s": 600}, NOW)
    assert relative.resolved_deadline(NOW) == NOW + timedelta(seconds=600)


def test_money_is_exact_and_serialized_as_a_decimal_string() -> None:
    request = VideoRequest.parse_at_edge({**BASE, "max_cost_usd": "0.1"}, NOW)
    assert request.model_dump(mode="json")["max_cost_usd"] == "0.1000"
    with pytest.raises(ValidationError):
        VideoRequest.parse_at_edge({**BASE, "max_cost_usd": "0.123456"}, NOW)
