from datetime import UTC, datetime, timedelta
from typing import Any

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
        ({"duration_s": 301}, "duration_s"),
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
        ({"mode": "s2v"}, "audio"),
        ({"mode": "r2v"}, "reference_images"),
        ({"mode": "r2v", "reference_images": []}, "reference_images"),
        ({"mode": "r2v", "reference_images": ["s3://b/r.png"] * 5}, "reference_images"),
        ({"mode": "r2v", "reference_images": ["s3://b/1.png", "s3://b/2.png", "ftp://x/3.png"]}, "reference_images[2]"),
        ({"mode": "r2v", "reference_images": ["https://127.0.0.1/r.png"]}, "reference_images[0]"),
        ({"mode": "flf2v"}, "image"),
        ({"mode": "flf2v", "image": "s3://b/i.png"}, "last_image"),
        ({"mode": "animate", "video": "s3://b/v.mp4"}, "image"),
        ({"mode": "animate", "image": "s3://b/i.png"}, "video"),
        ({"mode": "extend"}, "video"),
        ({"video": "ftp://x/v.mp4"}, "video"),
        ({"last_image": "http://example.com/l.png"}, "last_image"),
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


# Hosts that name loopback, a private network or a metadata service in some parser's reading (WHATWG IPv4 numbers,
# IPv6 forms, IDNA mappings, userinfo and backslash tricks), and localhost names. Every one is refused at submit.
UNSAFE_HOSTS = [
    "https://127.0.0.1/x.png",
    "https://2130706433/x.png",
    "https://127.1/x.png",
    "https://0x7f000001/x.png",
    "https://0x7f.0.0.1/x.png",
    "https://0177.0.0.1/x.png",
    "https://017700000001/x.png",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.7/x.png",
    "https://[::1]/x.png",
    "https://[::ffff:127.0.0.1]/x.png",
    "https://[::ffff:7f00:1]/x.png",
    "https://[fe80::1%25eth0]/x.png",
    "https://127.0.0.1./x.png",
    "https://127.0.0.1../x.png",
    "https://%31%32%37.0.0.1/x.png",
    "https://127%2e0%2e0%2e1/x.png",
    "https://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/x.png",  # fullwidth 127.0.0.1
    "https://127\u30020\u30020\u30021/x.png",  # ideographic full stops
    "https://evil@127.0.0.1/x.png",
    "https://user:pw@inputs.example.com/x.png",
    "https://inputs.example.com\\@127.0.0.1/x.png",
    "https://localhost/x.png",
    "https://LOCALHOST./x.png",
    "https://api.localhost/x.png",
    "https://localhost.localdomain/x.png",
    "https://\u24dbocalhost/x.png",  # circled l: IDNA maps it to localhost
    "https://metadata/computeMetadata/v1/",
    "https://inputs.example.com:99999/x.png",
    "https:///x.png",
]


@pytest.mark.parametrize("field", ["image", "audio", "mask", "callback_url"])
@pytest.mark.parametrize("url", UNSAFE_HOSTS)
def test_ip_literal_and_localhost_hosts_are_refused_in_every_spelling(field: str, url: str) -> None:
    assert refused_field({**BASE, field: url}) == field


@pytest.mark.parametrize("field", ["image", "audio", "mask", "callback_url"])
def test_public_dns_names_pass_with_any_port_and_query(field: str) -> None:
    url = "https://Inputs.Example.com:8443/a/b.png?X-Amz-Signature=abc&x=1"
    assert getattr(VideoRequest.parse_at_edge({**BASE, field: url}, NOW), field) == url


def test_stored_requests_from_before_the_host_rules_still_load() -> None:
    # Re-reading a stored job must not fail on a rule it predates; its fetches and callbacks check the host anyway.
    old = {**BASE, "image": "https://127.0.0.1/x.png", "callback_url": "https://0x7f000001/hook"}
    assert VideoRequest.model_validate(old).image == "https://127.0.0.1/x.png"
    assert refused_field(old) == "image"


# --- control characters, and the rules the JSON Schema states (issue 13) ----------------------------------------

TEXT_FIELDS = ["prompt", "negative_prompt"]
NAME_FIELDS = ["model", "campaign_id"]


@pytest.mark.parametrize("field", TEXT_FIELDS + NAME_FIELDS)
@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9b"])
def test_control_characters_are_refused_in_text_and_names(field: str, char: str) -> None:
    with pytest.raises(ValidationError) as info:
        VideoRequest.parse_at_edge({**BASE, field: f"abc{char}def"}, NOW)
    assert field_errors(info.value)[0] == {
        "field": field, "message": f"must not contain control characters (found U+{ord(char):04X})"}


@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_text_may_hold_tabs_and_line_breaks(field: str) -> None:
    value = "a red balloon\n\tover a town\r\nat dusk, ünïcödé and emoji \U0001f388"
    assert getattr(VideoRequest.parse_at_edge({**BASE, field: value}, NOW), field) == value


@pytest.mark.parametrize("field", NAME_FIELDS)
@pytest.mark.parametrize("char", ["\t", "\n", "\r"])
def test_names_hold_no_line_breaks_even_at_the_end(field: str, char: str) -> None:
    assert refused_field({**BASE, field: f"abc{char}"}) == field


def test_stored_requests_from_before_the_control_character_rule_still_load() -> None:
    old = {**BASE, "prompt": "a \x1b[31mred\x1b[0m balloon"}
    assert VideoRequest.model_validate(old).prompt == old["prompt"]
    assert refused_field(old) == "prompt"


def schema_validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(VideoRequest.model_json_schema())


@pytest.mark.parametrize("codepoint", range(0xA1))
def test_the_schema_and_the_validator_agree_on_every_control_character(codepoint: int) -> None:
    validator = schema_validator()
    for field, filler in (("prompt", "x"), ("negative_prompt", "x"), ("model", "abc"), ("campaign_id", "abc")):
        body = {**BASE, field: f"{filler}{chr(codepoint)}"}
        try:
            VideoRequest.parse_at_edge(body, NOW)
            accepted = True
        except ValidationError:
            accepted = False
        assert validator.is_valid(body) == accepted, (field, hex(codepoint))


@pytest.mark.parametrize(("change", "valid"), [
    ({"mode": "i2v"}, False),
    ({"mode": "i2v", "image": None}, False),
    ({"mode": "i2v", "image": "s3://b/i.png"}, True),
    ({"mode": "camera"}, False),
    ({"mode": "s2v", "image": "s3://b/i.png"}, False),
    ({"mode": "s2v", "image": "s3://b/i.png", "audio": "s3://b/a.wav"}, True),
    ({"mode": "inpaint", "image": "s3://b/i.png"}, False),
    ({"mode": "inpaint", "image": "s3://b/i.png", "mask": "s3://b/m.png"}, True),
    ({"mode": "s2v", "audio": "s3://b/a.wav"}, True),  # HuMo needs no image; the other s2v offers refuse it
    ({"mode": "s2v"}, False),
    ({"mode": "r2v"}, False),
    ({"mode": "r2v", "reference_images": []}, False),
    ({"mode": "r2v", "reference_images": ["s3://b/1.png", "s3://b/2.png"]}, True),
    ({"mode": "flf2v", "image": "s3://b/i.png"}, False),
    ({"mode": "flf2v", "image": "s3://b/i.png", "last_image": "s3://b/l.png"}, True),
    ({"mode": "animate", "image": "s3://b/i.png"}, False),
    ({"mode": "animate", "image": "s3://b/i.png", "video": "s3://b/v.mp4"}, True),
    ({"mode": "extend"}, False),
    ({"mode": "extend", "video": "s3://b/v.mp4"}, True),
    ({"deadline": "2026-11-26T11:00:00Z", "deadline_s": 60}, False),
    ({"deadline": None, "deadline_s": 60}, True),
    ({"deadline": "2026-11-26T11:00:00Z", "deadline_s": None}, True),
    ({"providers": ["local", "local"]}, False),
    ({"prompt": " \n\t "}, False),
])
def test_the_schema_states_the_cross_field_rules_as_the_model_applies_them(change: dict, valid: bool) -> None:
    body = {**BASE, **change}
    assert schema_validator().is_valid(body) == valid
    if valid:
        VideoRequest.parse_at_edge(body, NOW)
    else:
        with pytest.raises(ValidationError):
            VideoRequest.parse_at_edge(body, NOW)


def test_input_refs_name_each_reference_image_for_errors_and_for_providers() -> None:
    request = VideoRequest.parse_at_edge({**BASE, "mode": "r2v", "video": "s3://b/v.mp4",
                                          "reference_images": ["s3://b/1.png", "https://example.com/2.png"]}, NOW)
    assert request.input_refs() == [
        ("video", "video", "s3://b/v.mp4"),
        ("reference_images[0]", "reference_image_1", "s3://b/1.png"),
        ("reference_images[1]", "reference_image_2", "https://example.com/2.png"),
    ]
