"""The local GPU's queue as the engine weighs it: each job's render time left, in learned seconds, and when it is due.

The agent reports what it holds (model, delivered spec, progress, deadline), and its own `eta_s` in its catalog's
minutes per frame, which for a GPU far faster than the catalog makes the queue look tens of times longer than it
is. So the router prices that work itself, with what it has learned about each offer (`work_left`): the same
figures it decides a newcomer's own render time by.

The agent runs its queue earliest deadline first (agent/store.py), so a newcomer waits for what is running and for
the queued jobs due no later than itself (`wait_s`), and it delays the ones due later: it may not push one of those
past its deadline (`displaces`). Slots are taken as one pool: work over slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from router.models.offer import Offer
from router.policy.learning import CATALOG, Learned


@dataclass(frozen=True, slots=True)
class Work:
    """One job on the GPU, running or queued."""

    left_s: float  # render seconds left: learned p50, less the share done
    due: datetime | None = None  # its deadline; None: it runs after every job that has one
    running: bool = False


def work_left(offer: Offer, width: int, height: int, frames: int, progress: float, learned: Learned | None) -> float:
    """Learned p50 render seconds `offer` has left on a delivery that is `progress` (0-1) done."""
    p50 = offer.latency.compute_seconds(width, height, frames, p90=False) * (learned or CATALOG).time_p50
    return p50 * (1.0 - min(max(progress, 0.0), 1.0))


def held_until(left_s: float, stop_in_s: float) -> float:
    """An exploring try's work left: stopped in `stop_in_s` if unfinished, it holds the GPU no longer than that."""
    return min(left_s, max(0.0, stop_in_s))


def run_order(work: Sequence[Work]) -> tuple[Work, ...]:
    """The order the agent takes them in: running first, then by deadline, jobs without one last (stable)."""
    return tuple(sorted(work, key=lambda w: (not w.running, w.due is None, w.due or datetime.min)))


def wait_s(queue: Sequence[Work], due: datetime | None, slots: int) -> float:
    """Seconds before a newcomer due at `due` starts: what runs, and what is queued due no later, over the slots."""
    ahead = sum(w.left_s for w in queue
                if w.running or due is None or (w.due is not None and w.due <= due))
    return ahead / max(slots, 1)


def displaces(queue: Sequence[Work], due: datetime | None, render_s: float, slots: int, now: datetime) -> bool:
    """Whether a newcomer due at `due`, rendering `render_s`, would push a queued job due later from on time to
    late. `queue` is in run order. A job already late doesn't count: the newcomer doesn't change that."""
    if due is None:
        return False  # it goes last and delays nobody
    pool = max(slots, 1)
    done = 0.0
    for work in queue:
        done += work.left_s
        if work.running or work.due is None or work.due <= due:
            continue
        room = (work.due - now).total_seconds()
        if done / pool <= room < (done + render_s) / pool:
            return True
    return False
