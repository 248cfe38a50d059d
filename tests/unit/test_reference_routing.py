"""The request modes WAN's fine-tuned families serve (r2v, flf2v, animate, extend; s2v without an image), through
the policy engine over the default catalog."""

from datetime import UTC, datetime

from router.models.common import ProviderKind
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.policy.context import RoutingContext, TargetState
from router.policy.engine import route

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OFFERS = load_catalog().offers


def everywhere() -> RoutingContext:
    targets = {kind: TargetState(name=kind.value) for kind in ProviderKind}
    targets[ProviderKind.LOCAL] = TargetState(name="agent-1")
    return RoutingContext(targets=targets, configured=frozenset(ProviderKind))


def decide(**fields: object):
    body = {"prompt": "a ceramic mug on a desk", "resolution": "832x480", "duration_s": 2, "deadline_s": 30 * 86400,
            "priority": "batch", **fields}
    return route(VideoRequest.parse_at_edge(body, NOW), OFFERS, everywhere(), NOW)


def family(offer_id: str) -> set[str]:
    """A local family offer and its twin on the studio's worker-comfyui endpoint (the same graph)."""
    return {offer_id, offer_id.replace("local/", "runpod/") + "-comfy"}


def test_each_new_mode_goes_to_its_family_on_the_local_gpu_or_the_studio_endpoint() -> None:
    cases = {
        "local/wan21-phantom-14b": {"mode": "r2v", "reference_images": ["s3://b/uploads/t/1.png"] * 2},
        "local/wan21-flf2v-14b": {"mode": "flf2v", "image": "s3://b/uploads/t/i.png",
                                  "last_image": "s3://b/uploads/t/l.png"},
        "local/wan22-animate-14b": {"mode": "animate", "image": "s3://b/uploads/t/i.png",
                                    "video": "s3://b/uploads/t/v.mp4"},
    }
    for offer_id, fields in cases.items():
        decision = decide(**fields)
        assert decision.chosen is not None and decision.chosen.offer in family(offer_id), (offer_id, decision.reasons)
        feasible = {c.offer for c in decision.candidates if c.feasible}
        assert feasible == family(offer_id), (offer_id, feasible)


def test_s2v_without_an_image_goes_to_humo_and_every_face_animating_offer_says_why_not() -> None:
    decision = decide(mode="s2v", audio="s3://b/uploads/t/a.wav", duration_s=3)

    humo = family("local/humo-17b")
    assert decision.chosen is not None and decision.chosen.offer in humo
    s2v_others = [c for c in decision.candidates if c.offer not in humo
                  and any(o.id == c.offer and "s2v" in o.modes for o in OFFERS)]
    assert s2v_others
    for candidate in s2v_others:
        assert not candidate.feasible
        assert any(r.code == "mode" and "without image" in r.detail for r in candidate.reasons), candidate.reasons
    assert {o.id for o in OFFERS if "image" in o.optional_inputs} == humo


def test_s2v_with_an_image_keeps_every_s2v_offer_in_play() -> None:
    decision = decide(mode="s2v", audio="s3://b/uploads/t/a.wav", image="s3://b/uploads/t/i.png", duration_s=3)
    assert not any("without image" in r.detail for c in decision.candidates for r in c.reasons)


def test_extend_goes_to_an_offer_that_chains_segments_and_every_other_says_mode() -> None:
    decision = decide(mode="extend", video="s3://b/uploads/t/v.mp4")

    chaining = {o.id for o in OFFERS if o.long_form is not None}
    assert decision.chosen is not None and decision.chosen.offer in chaining
    assert all(any(r.code == "mode" for r in c.reasons) for c in decision.candidates if c.offer not in chaining)
