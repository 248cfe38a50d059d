"""Circuit breaking per target: transport failures and failed renders count; a delivered output resets."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from router.providers.errors import TransientError
from router.services.deps import Deps

T = TypeVar("T")


def watch(deps: Deps, target: str, call: Callable[[], T]) -> T:
    """Run a provider call; a retryable failure counts against the target's circuit and is re-raised."""
    try:
        return call()
    except TransientError:
        failed(deps, target)
        raise


def failed(deps: Deps, target: str) -> None:
    if deps.circuits is not None:
        deps.circuits.failure(target, deps.clock(), deps.circuits.cooldown_s / deps.time_scale)


def succeeded(deps: Deps, target: str) -> None:
    if deps.circuits is not None:
        deps.circuits.success(target)
