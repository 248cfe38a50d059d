"""The one backoff function for queue-level re-polls: exponential, capped, with equal jitter."""

from __future__ import annotations

import random

SQS_MAX_DELAY_S = 900


def backoff(
    attempt: int, base_s: float = 5.0, cap_s: float = SQS_MAX_DELAY_S, rng: random.Random | None = None
) -> float:
    """Delay before try number `attempt` (0-based): uniform in [ceiling/2, ceiling], ceiling = base·2^n ≤ cap.

    Equal jitter (half the ceiling fixed, half random), not full jitter (uniform in [0, ceiling]): full jitter
    can draw a delay near zero, so a retry would come back almost at once; the fixed half keeps every wait at least
    half the ceiling while the random half still spreads retries that failed together.
    """
    ceiling = min(cap_s, base_s * (2 ** min(attempt, 20)))
    return (rng or random).uniform(ceiling / 2, ceiling)
