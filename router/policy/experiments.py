"""Which arm of an experiment a request goes to, if any: pure, deterministic, and only among feasible offers.

A request takes part when its sticky unit (its campaign, its tenant, or itself) hashes into the experiment's share
and both arms have an offer the engine found feasible for it: within its deadline, quality floor, cost cap and
budgets. It is then sent to the best-scored feasible offer of its arm; the engine's own pick becomes the first
fallback. So an experiment only ever chooses among what the engine would accept, and never breaks a constraint.

The draw is SHA-256 of the experiment's name and the unit: the same unit always lands on the same arm, whichever
process decides, and two experiments draw independently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from router.models.decision import Candidate, Decision
from router.models.experiment import Arm, Experiment, Stickiness
from router.models.offer import Offer, model_family
from router.policy.context import RoutingContext
from router.policy.plan import choose_instead

ARMS: tuple[Arm, Arm] = ("a", "b")


def unit_of(stickiness: Stickiness, tenant: str, campaign_id: str | None, job_id: str) -> str:
    if stickiness is Stickiness.TENANT:
        return f"tenant:{tenant}"
    if stickiness is Stickiness.CAMPAIGN and campaign_id is not None:
        return f"campaign:{tenant}:{campaign_id}"
    return f"job:{tenant}:{job_id}"


def draw(name: str, unit: str, share: float) -> Arm | None:
    """The unit's arm, or None when it falls outside the share. Two independent uniforms from one digest: the
    first decides taking part, the second the arm, so growing the share adds units without moving any."""
    digest = hashlib.sha256(f"{name}\x00{unit}".encode()).digest()
    part, side = (int.from_bytes(digest[i:i + 8], "big") / 2.0 ** 64 for i in (0, 8))
    if part >= share:
        return None
    return "a" if side < 0.5 else "b"


def arm_offers(spec: str, offers: Iterable[Offer]) -> frozenset[str]:
    """An arm's offers: the one whose id it is, else every offer whose model's family it names."""
    offers = list(offers)
    if any(offer.id == spec for offer in offers):
        return frozenset({spec})
    return frozenset(offer.id for offer in offers if model_family(offer.model) == spec.lower())


def arm_errors(arms: Sequence[str], offers: Sequence[Offer]) -> list[str]:
    """Why two arms can't be compared: one names nothing in the catalog, or they share an offer."""
    found = [arm_offers(arm, offers) for arm in arms]
    errors = [f"arms.{n}: {arm!r} is neither an offer id nor a model family of the catalog"
              for n, (arm, ids) in enumerate(zip(arms, found, strict=True)) if not ids]
    if not errors and found[0] & found[1]:
        errors.append(f"arms: both arms hold {', '.join(sorted(found[0] & found[1]))}")
    return errors


def best_of(decision: Decision, offer_ids: frozenset[str]) -> Candidate | None:
    """The arm's best feasible candidate: the highest score, then the offer id (as the engine breaks ties)."""
    feasible = [c for c in decision.candidates if c.offer in offer_ids and c.feasible and c.score is not None]
    return min(feasible, key=lambda c: (-(c.score or 0.0), c.offer), default=None)


@dataclass(frozen=True)
class Placement:
    arm: Arm
    decision: Decision  # the engine's, with the arm's offer chosen
    mine: Candidate  # the arm's offer this request goes to
    other: Candidate  # the other arm's best: what a paired twin would render on


def place(decision: Decision, experiment: Experiment, unit: str, offers: Sequence[Offer],
          context: RoutingContext) -> Placement | None:
    """The decision for a request the experiment takes, or None when it doesn't take it (outside the share, or an
    arm with no feasible offer for it)."""
    arm = draw(experiment.name, unit, experiment.share)
    if arm is None or decision.chosen is None:
        return None
    best = [best_of(decision, arm_offers(spec, offers)) for spec in experiment.arms]
    if best[0] is None or best[1] is None:
        return None
    mine, other = (best[0], best[1]) if arm == "a" else (best[1], best[0])
    spec = experiment.arms[ARMS.index(arm)]
    chosen = _choose(decision, mine, context, _reason(experiment.name, arm, spec, mine, decision))
    if chosen is None:
        return None
    return Placement(arm=arm, decision=chosen, mine=mine, other=other)


def keep_to_arm(decision: Decision, experiment_name: str, arm: Arm, spec: str, offers: Sequence[Offer],
                context: RoutingContext) -> Decision | None:
    """A paired twin's decision: its arm's best feasible offer, or None when its arm has none left."""
    mine = best_of(decision, arm_offers(spec, offers))
    if mine is None or decision.chosen is None:
        return None
    return _choose(decision, mine, context, _reason(experiment_name, arm, spec, mine, decision))


def _choose(decision: Decision, mine: Candidate, context: RoutingContext, reason: str) -> Decision | None:
    """The arm's offer chosen, saying so even where the engine had picked it anyway: the job's routing shows
    the experiment decided."""
    chosen = choose_instead(decision, mine, context, reason)
    if chosen is not None and chosen.chosen is not None and chosen.chosen.reason != reason:
        chosen = replace(chosen, chosen=replace(chosen.chosen, reason=reason))
    return chosen


def _reason(name: str, arm: Arm, spec: str, mine: Candidate, decision: Decision) -> str:
    engine = decision.chosen.offer if decision.chosen is not None else "-"
    return (f"experiment {name}, arm {arm} ({spec}): {mine.offer} is feasible, ${mine.estimated_cost_usd} "
            f"(p90 ${mine.estimated_cost_p90_usd}); the engine alone would pick {engine}")
