"""Random provider faults on every sandbox at once: every job ends, and no attempt is ever paid for twice.

`make test` runs a dozen jobs; `make bench` runs the full soak (slow marker).
"""

import random
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import pytest

from hvr.sandbox.base import Fault
from router.models.request import VideoRequest
from router.services.submit import accept

BODIES = [
    {"mode": "t2v", "prompt": "waves", "resolution": "720p", "duration_s": 5, "quality": "premium",
     "providers": ["runpod"], "deadline_s": 3600},
    {"mode": "t2v", "prompt": "plane", "resolution": "480p", "duration_s": 5, "quality": "standard",
     "providers": ["replicate"], "deadline_s": 3600},
    {"mode": "t2v", "prompt": "bottle", "resolution": "720p", "duration_s": 8, "quality": "premium",
     "providers": ["veo"], "deadline_s": 3600},
]
RATES = {Fault.RATE_LIMIT: 0.1, Fault.SERVER_ERROR: 0.05, Fault.FAILED: 0.05, Fault.ACCEPT_THEN_DROP: 0.05,
         Fault.DUPLICATE_WEBHOOK: 0.1, Fault.OUTPUT_EXPIRED: 0.05}


def _attempt_of(url: str | None) -> str | None:
    return parse_qs(urlsplit(url or "").query).get("attempt", [None])[0]


def soak(stack, deps, jobs: int, seed: int) -> None:
    rng = random.Random(seed)
    servers = stack.sandboxes.servers
    saved = {name: dict(server.plan.rates) for name, server in servers.items()}
    for server in servers.values():
        server.plan.rates.update(RATES)
    try:
        ids = [accept(VideoRequest.parse_at_edge(rng.choice(BODIES)), "soak", deps).id for _ in range(jobs)]
        assert stack.drain(lambda: all(deps.jobs.get("soak", i).status.terminal for i in ids), timeout_s=60 + 8 * jobs)
    finally:
        for name, server in servers.items():
            server.plan.rates.clear()
            server.plan.rates.update(saved[name])
    finished = [deps.jobs.get("soak", i) for i in ids]
    assert all(job.status.terminal and (job.status.value == "succeeded" or job.error) for job in finished)
    # Never two provider jobs for one attempt (RunPod and Replicate carry the attempt in the webhook URL).
    runpod = Counter(_attempt_of(body.get("webhook")) for body in servers["runpod"].submitted)
    replicate = Counter(_attempt_of(p.webhook) for p in servers["replicate"].predictions.values())
    ours = {a.id for job in finished for a in job.attempts}
    for counts in (runpod, replicate):
        assert all(n == 1 for attempt, n in counts.items() if attempt in ours), counts
    # One ledger row per attempt that reached a provider, whatever the duplicates.
    for job in finished:
        rows = deps.ledger.for_job("soak", job.id)
        assert len(rows) == len({r.attempt_id for r in rows}) <= len(job.attempts)


def test_fault_soak_scaled(stack, deps) -> None:
    soak(stack, deps, jobs=12, seed=7)


@pytest.mark.slow
def test_fault_soak_full(stack, deps) -> None:
    soak(stack, deps, jobs=90, seed=11)
