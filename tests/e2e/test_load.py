"""64 concurrent clients on the embedded API while one CPU-bound process per core runs beside it (issue 19): every
request answered, none reset or refused, each answer the one its route gives unloaded. `make test` sends each
client a few requests; `make bench` fifty each, printing the latency percentiles."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.test_api import DRAFT

CLIENTS = 64


@pytest.fixture
def busy_cores() -> Iterator[int]:
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        yield len(burners)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


@pytest.mark.parametrize("each", [3, pytest.param(50, marks=pytest.mark.slow)])
def test_64_concurrent_clients_beside_a_busy_cpu_get_every_answer(stack, busy_cores: int, each: int,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # What a dashboard and a batch tool send: quotes (a routing decision each), listings, the health check.
    calls = [("POST", "/v1/quotes", DRAFT, 200), ("GET", "/v1/jobs?limit=5", None, 200),
             ("GET", "/v1/health", None, 200)]
    answers: Counter[str] = Counter()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(n: int) -> None:
        # One connection per client, kept alive, as an SDK's pool would; all start at once.
        with httpx.Client(base_url=stack.url, headers={"Authorization": "Bearer acme-key"}, timeout=120) as http:
            start.wait()
            for k in range(each):
                method, path, body, expected = calls[(n + k) % len(calls)]
                began = time.perf_counter()
                try:
                    response = http.request(method, path, json=body)
                except httpx.HTTPError as exc:  # a reset, a refused connect, a timeout
                    with lock:
                        errors.append(f"{method} {path}: {type(exc).__name__}: {exc}")
                    continue
                with lock:
                    latencies.append(time.perf_counter() - began)
                    answers[f"{method} {path.split('?')[0]} {response.status_code}"] += 1
                    if response.status_code != expected:
                        errors.append(f"{method} {path}: {response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:5]
    assert sum(answers.values()) == CLIENTS * each
    cuts = statistics.quantiles(latencies, n=20)
    with capsys.disabled():
        print(f"\n  {CLIENTS} clients x {each} requests beside {busy_cores} busy cores: every one answered; latency "
              f"p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {cuts[18] * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms")
