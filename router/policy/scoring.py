"""Ranking the feasible offers: four scores in [0, 1], weighted by a profile the priority and spend mode pick.

- cost: the cheapest feasible expected cost over this offer's (1.0 for the cheapest; `Estimate.expected_cost`);
- quality: surplus over the request's floor, as a share of the room above it (stars, or the learned figure that
  replaced them once an offer has enough ratings: router.policy.quality);
- slack: the share of the time to the deadline left after the p90 ready time (1.0 without a deadline);
- load: how little of the wait is queue rather than the render itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from router.models.budget import SpendMode
from router.models.common import Priority
from router.policy.constraints import Estimate


@dataclass(frozen=True)
class Profile:
    name: str
    cost: float
    quality: float
    slack: float
    load: float


INTERACTIVE = Profile("interactive", cost=0.55, quality=0.10, slack=0.25, load=0.10)
BATCH = Profile("batch", cost=0.80, quality=0.05, slack=0.10, load=0.05)
ECONOMY = Profile("economy", cost=0.85, quality=0.00, slack=0.10, load=0.05)


def profile_for(priority: Priority, spend_mode: SpendMode) -> Profile:
    if spend_mode in (SpendMode.ECONOMY, SpendMode.LOCAL_ONLY):
        return ECONOMY
    return BATCH if priority is Priority.BATCH else INTERACTIVE


def score(quality: float, est: Estimate, floor: int, cheapest: float, profile: Profile,
          now: datetime, deadline: datetime | None) -> float:
    """`quality`: the offer's stars, or what its ratings replaced them with (`RoutingContext.quality_of`)."""
    expected = est.expected_cost
    cost = 1.0 if expected <= 0 else cheapest / expected
    surplus = (quality - floor) / max(1, 5 - floor)
    if deadline is None:
        slack = 1.0
    else:
        window = (deadline - now).total_seconds()
        slack = max(0.0, min(1.0, (deadline - est.ready_p90).total_seconds() / window)) if window > 0 else 0.0
    load = 1.0 - est.queue_wait_s / (est.queue_wait_s + est.compute_p50_s + 1.0)
    total = profile.cost * cost + profile.quality * surplus + profile.slack * slack + profile.load * load
    return round(total, 6)
