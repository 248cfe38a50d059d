"""Experiment assignment (router.policy.experiments): deterministic by the sticky unit, the share honoured, arms
resolved from the catalog, and a request only ever sent to an offer the engine found feasible for it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.models.experiment import Experiment, Stickiness
from router.policy.engine import route
from router.policy.experiments import arm_errors, arm_offers, draw, keep_to_arm, place, unit_of
from tests.unit.test_policy import (
    NOW,
    OFFERS,
    assert_meets_hard_constraints,
    contexts,
    everywhere,
    request,
    requests,
)


def experiment(arms: tuple[str, str] = ("wan", "veo"), share: float = 1.0, name: str = "wan-vs-veo") -> Experiment:
    return Experiment(name=name, arms=list(arms), share=share, spend_cap_usd=Decimal(100),
                      ends_at=NOW + timedelta(days=30), created_at=NOW, updated_at=NOW, created_by="api:ops")


def test_the_draw_is_the_same_for_the_same_unit_and_honours_the_share() -> None:
    units = [f"campaign:acme:c{i}" for i in range(4000)]
    arms = [draw("exp", unit, 0.3) for unit in units]
    assert arms == [draw("exp", unit, 0.3) for unit in units]
    taken = [arm for arm in arms if arm is not None]
    assert 0.27 < len(taken) / len(units) < 0.33
    assert 0.45 < taken.count("a") / len(taken) < 0.55
    # Growing the share only adds units: none taken at 0.3 changes arm or leaves at 0.6.
    assert all(draw("exp", u, 0.6) == a for u, a in zip(units, arms, strict=True) if a is not None)
    # Another experiment draws independently.
    other = [draw("other", unit, 0.3) for unit in units]
    assert sum(a is not None and b is not None for a, b in zip(arms, other, strict=True)) < 0.15 * len(units)


def test_the_sticky_unit() -> None:
    assert unit_of(Stickiness.CAMPAIGN, "acme", "spring", "job_1") == "campaign:acme:spring"
    assert unit_of(Stickiness.CAMPAIGN, "acme", None, "job_1") == "job:acme:job_1"  # outside a campaign: itself
    assert unit_of(Stickiness.TENANT, "acme", "spring", "job_1") == "tenant:acme"
    assert unit_of(Stickiness.REQUEST, "acme", "spring", "job_1") == "job:acme:job_1"


def test_arms_are_offers_or_families_of_the_catalog() -> None:
    assert arm_offers("local/wan21-1.3b", OFFERS) == {"local/wan21-1.3b"}
    assert arm_offers("veo", OFFERS) == {o.id for o in OFFERS if o.provider.value == "veo"}
    assert "local/animatediff-sd15" in arm_offers("animatediff", OFFERS)
    assert arm_errors(["wan", "veo"], OFFERS) == []
    assert arm_errors(["sora", "veo"], OFFERS) == ["arms.0: 'sora' is neither an offer id nor a model family of "
                                                   "the catalog"]
    assert arm_errors(["wan", "local/wan21-1.3b"], OFFERS) == ["arms: both arms hold local/wan21-1.3b"]


def test_a_taken_request_goes_to_its_arms_best_feasible_offer_and_the_engines_pick_is_the_first_fallback() -> None:
    req = request(resolution="720p", duration_s=8, quality="premium", deadline_s=7 * 86400)
    decision = route(req, OFFERS, everywhere(), NOW)
    exp = experiment()
    arm = next(draw(exp.name, u, 1.0) for u in ["job:acme:j1"])
    placed = place(decision, exp, "job:acme:j1", OFFERS, everywhere())
    assert placed is not None and placed.arm == arm
    assert placed.decision.chosen is not None
    chosen = placed.decision.chosen.offer
    assert chosen in arm_offers(exp.arms[0 if arm == "a" else 1], OFFERS)
    best = max((c for c in decision.candidates if c.feasible and c.offer in arm_offers(exp.arms[0 if arm == "a"
                                                                                               else 1], OFFERS)),
               key=lambda c: c.score or 0)
    assert chosen == best.offer and chosen == placed.mine.offer
    assert decision.chosen is not None
    if chosen != decision.chosen.offer:
        assert placed.decision.fallbacks[0] == decision.chosen.offer
    assert placed.decision.chosen.reason.startswith("experiment wan-vs-veo, arm ")


def test_a_request_one_arm_cant_serve_is_left_alone() -> None:
    # Lip sync: no Veo offer speaks it, so a WAN-vs-Veo experiment doesn't take it, whatever the draw.
    req = request(mode="s2v", resolution="720p", duration_s=5, deadline_s=86400)
    decision = route(req, OFFERS, everywhere(), NOW)
    assert all(place(decision, experiment(), f"job:acme:{n}", OFFERS, everywhere()) is None for n in range(20))


def test_a_twin_keeps_to_its_arm_or_gets_nothing() -> None:
    req = request(resolution="720p", duration_s=8, quality="premium", deadline_s=7 * 86400)
    decision = route(req, OFFERS, everywhere(), NOW)
    kept = keep_to_arm(decision, "wan-vs-veo", "b", "veo", OFFERS, everywhere())
    assert kept is not None and kept.chosen is not None and kept.chosen.offer.startswith("veo/")
    lipsync = route(request(mode="s2v", resolution="720p", duration_s=5, deadline_s=86400), OFFERS, everywhere(), NOW)
    assert keep_to_arm(lipsync, "wan-vs-veo", "b", "veo", OFFERS, everywhere()) is None


arms = st.sampled_from([("wan", "veo"), ("local/wan21-1.3b", "local/animatediff-sd15"), ("animatediff", "veo"),
                        ("local/wan21-14b", "replicate/wan-2.2-t2v-fast")])


@settings(max_examples=300, deadline=None)
@given(body=requests, context=contexts, pair=arms, share=st.sampled_from([0.1, 0.5, 1.0]),
       unit=st.sampled_from([f"campaign:acme:c{n}" for n in range(6)] + ["tenant:acme", "job:acme:j9"]))
def test_an_experiment_never_breaks_a_hard_constraint(body: dict, context, pair: tuple[str, str], share: float,
                                                      unit: str) -> None:
    req = request(**body)
    decision = route(req, OFFERS, context, NOW)
    exp = experiment(pair, share)
    placed = place(decision, exp, unit, OFFERS, context)
    assert placed == place(decision, exp, unit, OFFERS, context)  # deterministic
    if placed is None:
        return
    assert placed.arm == draw(exp.name, unit, share)
    chosen = placed.decision.chosen
    assert chosen is not None
    # The engine's own verdict on the row (mode, size, floor, cap, budget, deadline), and the request's own figures.
    assert_meets_hard_constraints(req, decision, chosen)
    assert chosen.offer not in placed.decision.fallbacks
    assert sorted([*placed.decision.fallbacks, chosen.offer]) == sorted(
        [*decision.fallbacks, decision.chosen.offer])  # type: ignore[union-attr]


@pytest.mark.parametrize("arms_", [["wan", "wan"]])
def test_two_equal_arms_are_refused(arms_: list[str]) -> None:
    with pytest.raises(ValueError, match="differ"):
        experiment(tuple(arms_))  # type: ignore[arg-type]
