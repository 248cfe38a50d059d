"""The two runs of a hypothesis state machine every such test file has: a scaled one in `make test` and a full one
under the slow marker (`make bench`, `make soak`)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine


def _runs(examples: int, steps: int) -> settings:
    # No per-example deadline: an example's time is the real services', and it varies with the machine's load.
    return settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def scaled_and_full(machine: type[RuleBasedStateMachine], scaled: tuple[int, int],
                    full: tuple[int, int]) -> tuple[type, type]:
    """Test classes for `machine`, each (examples, steps); assign them to names starting `Test` for pytest to
    collect them (the bare TestCase must not be left at module level: it would run with hypothesis' defaults)."""
    base: Any = machine.TestCase
    scaled_class = type(f"Test{machine.__name__}", (base,), {"settings": _runs(*scaled)})
    full_class = type(f"Test{machine.__name__}Full", (base,), {"settings": _runs(*full)})
    return scaled_class, pytest.mark.slow(full_class)
