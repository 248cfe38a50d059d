"""Routing decision speed: p99 < 0.5 ms and >= 5,000 decisions/s over a 30-offer catalog on one core (issue 14;
the first target was 1 ms), with learned models and exploration in the context. `make bench` prints the figures and
keeps them in bench/results.json (section `routing`).

The mix is what the studio sends: drafts, premium 720p and 1080p, image-to-video under a cap, speech-to-video, camera
moves. Cloud offers have a dozen measured runs (a learned spread and cost factor); the GPU's offers have one, so they
are still explorable. Each decision draws whether it explores as the services do (seeded, the default share); the
worst case, every decision drawn, is measured too. Times are CPU time of this thread, which a loaded machine doesn't
inflate, beside wall time, which it does; the targets are checked on CPU time.
"""

import os
import random
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import reduce

import pytest

from router.models.common import ProviderKind
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.policy.context import RoutingContext, TargetState
from router.policy.engine import route
from router.policy.exploration import Limits, allowance
from router.policy.learning import WINDOW, Observation, OfferStats, observe, snapshot
from tests.bench.conftest import Record

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
IMAGE, AUDIO = "s3://b/uploads/t/k.png", "s3://b/uploads/t/a.wav"
BODIES = [
    {"mode": "t2v", "prompt": "x", "resolution": "512x512", "aspect_ratio": "1:1", "duration_s": 2, "quality": "draft",
     "deadline_s": 7200},
    {"mode": "t2v", "prompt": "x", "resolution": "720p", "duration_s": 5, "quality": "premium", "deadline_s": 86400},
    {"mode": "i2v", "prompt": "x", "image": IMAGE, "resolution": "480p", "duration_s": 5, "max_cost_usd": "0.50",
     "deadline_s": 3600, "priority": "batch"},
    {"mode": "s2v", "prompt": "x", "image": IMAGE, "audio": AUDIO, "resolution": "720p", "duration_s": 10,
     "deadline_s": 43200},
    {"mode": "camera", "prompt": "x", "image": IMAGE, "camera": {"motion": "pan_left"}, "resolution": "480p",
     "duration_s": 4, "deadline_s": 21600},
    {"mode": "t2v", "prompt": "x", "resolution": "1080p", "duration_s": 8, "quality": "premium", "deadline_s": 172800},
    {"mode": "i2v", "prompt": "x", "image": IMAGE, "resolution": "720p", "duration_s": 5, "max_cost_usd": "0.30",
     "deadline_s": 43200},
    {"mode": "t2v", "prompt": "x", "resolution": "480p", "duration_s": 5, "quality": "standard", "deadline_s": 10800},
]
DECISIONS = 16_000
DRAWS = 1_000  # contexts with their own exploration draw, used in turn


def _offers() -> list:
    catalog = load_catalog().offers
    if len(catalog) >= 30:
        # The target is stated for 30 offers: every cloud offer (the mix's 1080p premium and s2v requests need
        # them) and the local ones up to 30. The whole catalog is timed beside it (recorded, not asserted).
        cloud = [o for o in catalog if o.provider.value != "local"]
        return cloud + [o for o in catalog if o.provider.value == "local"][: 30 - len(cloud)]
    # Fewer: the default catalog plus copies (as a deployment adding endpoints would).
    return list(catalog) + [o.model_copy(update={"id": f"{o.id}-b"}) for o in catalog[: max(0, 30 - len(catalog))]]


def _context(offers: list) -> RoutingContext:
    cloud_runs = [Observation(ok=True, render_s=0.05 * 1.2 ** (i % 5), catalog_render_s=1.0, billed_usd=1.1,
                              priced_usd=1.0) for i in range(WINDOW)]
    local_runs = [Observation(ok=True, render_s=0.3, catalog_render_s=1.0)]
    learned = snapshot({o.id: reduce(observe, local_runs if o.provider is ProviderKind.LOCAL else cloud_runs,
                                     OfferStats()) for o in offers})
    return RoutingContext(targets={k: TargetState(name=k.value) for k in ProviderKind},
                          configured=frozenset(ProviderKind), learned=learned)


def _measure(requests: list[VideoRequest], offers: list, contexts: list[RoutingContext]) -> dict[str, float]:
    for i in range(len(requests) * 50):  # warm up
        route(requests[i % len(requests)], offers, contexts[i % len(contexts)], NOW)
    wall, cpu = [], []
    wall_started, cpu_started = time.perf_counter(), time.thread_time()
    for i in range(DECISIONS):
        request, context = requests[i % len(requests)], contexts[i % len(contexts)]
        w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        route(request, offers, context, NOW)
        cpu.append(time.thread_time_ns() - c0)
        wall.append(time.perf_counter_ns() - w0)
    wall_s, cpu_s = time.perf_counter() - wall_started, time.thread_time() - cpu_started
    figures: dict[str, float] = {}
    for name, samples, elapsed in (("cpu", cpu, cpu_s), ("wall", wall, wall_s)):
        samples.sort()
        figures |= {f"{name}_p50_us": round(samples[len(samples) // 2] / 1e3, 1),
                    f"{name}_p99_us": round(samples[int(len(samples) * 0.99)] / 1e3, 1),
                    f"{name}_mean_us": round(statistics.fmean(samples) / 1e3, 1),
                    f"{name}_decisions_per_s": round(len(samples) / elapsed)}
    return figures


@pytest.mark.slow
def test_route_decision_latency(bench_record: Record) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    offers = _offers()
    base = _context(offers)
    requests = [VideoRequest.parse_at_edge(body, NOW) for body in BODIES]
    limits = Limits()
    drawn = [replace(base, exploration=allowance(limits, random.Random(f"explore:bench:{n}").random(), 0, Decimal(0)))
             for n in range(DRAWS)]
    always = [replace(base, exploration=allowance(limits, 0.0, 0, Decimal(0)))]
    results = {"as_deployed": _measure(requests, offers, drawn), "every_decision_explores": _measure(requests, offers,
                                                                                                     always)}
    explored = sum(bool(d.chosen and d.chosen.explored) for d in (route(r, offers, always[0], NOW) for r in requests))
    catalog = list(load_catalog().offers)
    if len(catalog) != len(offers):
        whole = _context(catalog)
        results[f"whole_catalog_{len(catalog)}_offers"] = _measure(
            requests, catalog, [replace(whole, exploration=d.exploration) for d in drawn])
    for name, figures in results.items():
        print(f"\nrouting over {len(offers)} offers (unless named), {name}: CPU p50 {figures['cpu_p50_us']:.0f} us, "
              f"p99 {figures['cpu_p99_us']:.0f} us, {figures['cpu_decisions_per_s']} decisions/s; wall p50 "
              f"{figures['wall_p50_us']:.0f} us, p99 {figures['wall_p99_us']:.0f} us, "
              f"{figures['wall_decisions_per_s']} decisions/s (one core)")
    bench_record("routing", "decision", {
        "offers": len(offers), "decisions": DECISIONS, "mix": [f"{b['mode']} {b['resolution']}" for b in BODIES],
        "exploration_share": limits.share, "mix_explored_when_drawn": explored, **results,
        "target": "CPU p99 < 500 us and >= 5000 decisions/s as deployed; p99 < 500 us when every decision explores",
    })
    deployed, worst = results["as_deployed"], results["every_decision_explores"]
    assert deployed["cpu_p99_us"] < 500 and deployed["cpu_decisions_per_s"] >= 5000, deployed
    assert worst["cpu_p99_us"] < 500, worst
