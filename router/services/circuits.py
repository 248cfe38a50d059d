"""Circuit breaking per target: transport failures and failed renders count; a delivered output resets.

A job's input that can't be fetched is the client's failure, not the target's: it never counts, or one tenant's
bad URL would close a provider to everyone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from router.models.common import Circuit
from router.providers.errors import InputUnavailable, TransientError, Unavailable
from router.services.deps import Deps

T = TypeVar("T")


class CircuitOpen(Unavailable):
    """The call wasn't made: the target's circuit is open. Not the target's own silence about this call."""


def watch(deps: Deps, target: str, call: Callable[[], T]) -> T:
    """Run a provider call; a retryable failure of the target's counts against its circuit and is re-raised."""
    try:
        return call()
    except InputUnavailable:
        raise
    except TransientError:
        failed(deps, target)
        raise


def ask(deps: Deps, target: str, call: Callable[[], T]) -> T:
    """A call about work already at the target (status, lookup, cancel). While its circuit is open the call isn't
    made: a dead box costs the worker no connect timeouts, and the caller treats it as no answer."""
    if is_open(deps, target):
        raise CircuitOpen(f"{target}'s circuit is open: not asked")
    return watch(deps, target, call)


def is_open(deps: Deps, target: str) -> bool:
    return deps.circuits.states(deps.clock()).get(target) is Circuit.OPEN


def failed(deps: Deps, target: str) -> None:
    deps.circuits.failure(target, deps.clock(), deps.circuits.cooldown_s / deps.time_scale)


def succeeded(deps: Deps, target: str) -> None:
    deps.circuits.success(target)
