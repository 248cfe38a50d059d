"""The one backoff function for queue-level re-polls: exponential, capped, with full jitter."""

from __future__ import annotations

import random

SQS_MAX_DELAY_S = 900


def backoff(
    attempt: int, base_s: float = 5.0, cap_s: float = SQS_MAX_DELAY_S, rng: random.Random | None = None
) -> float:
    """Delay before try number `attempt` (0-based): uniform in [ceiling/2, ceiling], ceiling = base·2^n ≤ cap.

    Half-jitter rather than full jitter keeps a floor so a poll is never immediate.
    """
    ceiling = min(cap_s, base_s * (2 ** min(attempt, 20)))
    return (rng or random).uniform(ceiling / 2, ceiling)
