"""Circuit breakers: state shared through DynamoDB, read into the policy's context, and routed around."""

from datetime import timedelta

import pytest

from router.models.common import Circuit, ProviderKind
from router.models.request import VideoRequest
from router.services import circuits
from router.services.context import routing_context
from router.services.quote import quote

DRAFT = {"mode": "t2v", "prompt": "a paper boat", "resolution": "512x512", "aspect_ratio": "1:1",
         "duration_s": 2, "quality": "draft", "deadline_s": 86400}


def test_failures_open_the_circuit_the_policy_routes_around_it_and_a_success_closes_it(stack, deps) -> None:
    target = deps.providers[ProviderKind.LOCAL].target_name
    repo = deps.circuits
    # The stack runs time-scaled; a long cooldown keeps the circuit open for the whole test however slow it runs.
    repo.cooldown_s, saved = 3600 * deps.time_scale, repo.cooldown_s
    for _ in range(repo.threshold - 1):
        circuits.failed(deps, target)
    assert routing_context(deps).targets[ProviderKind.LOCAL].circuit is Circuit.CLOSED
    circuits.failed(deps, target)
    assert routing_context(deps).targets[ProviderKind.LOCAL].circuit is Circuit.OPEN

    decision = quote(VideoRequest.parse_at_edge(DRAFT), deps)
    assert decision.chosen is None
    assert any("circuit_open" in reason for reason in decision.reasons)

    later = deps.clock() + timedelta(seconds=3601)
    assert repo.states(later)[target] is Circuit.HALF_OPEN  # the next call is the probe
    circuits.succeeded(deps, target)
    assert routing_context(deps).targets[ProviderKind.LOCAL].circuit is Circuit.CLOSED
    assert quote(VideoRequest.parse_at_edge(DRAFT), deps).chosen is not None
    repo.cooldown_s = saved


def test_the_offer_list_reports_the_circuit_the_policy_routes_by(stack, deps) -> None:
    import httpx

    target = deps.providers[ProviderKind.LOCAL].target_name
    repo = deps.circuits
    repo.cooldown_s, saved = 3600 * deps.time_scale, repo.cooldown_s

    def circuits_by_provider() -> dict[str, set[str]]:
        answer = httpx.get(f"{stack.url}/v1/providers", headers={"Authorization": f"Bearer {stack.admin_key}"},
                           timeout=30)
        assert answer.status_code == 200, answer.text
        seen: dict[str, set[str]] = {}
        for offer in answer.json()["offers"]:
            seen.setdefault(offer["provider"], set()).add(offer["health"]["circuit"])
        return seen

    try:
        for _ in range(repo.threshold):
            circuits.failed(deps, target)
        opened = circuits_by_provider()
        circuits.succeeded(deps, target)
        closed = circuits_by_provider()
    finally:
        circuits.succeeded(deps, target)
        repo.cooldown_s = saved

    assert opened["local"] == {"open"} and opened["replicate"] == {"closed"}
    assert closed["local"] == {"closed"}


class InputFailingAgent:
    """The real agent adapter, except that every render reports what the comfyui engine says when the client's
    input can't be fetched (agent/engines/comfyui.py `_download`)."""

    def __init__(self, inner, error: str) -> None:
        self.inner = inner
        self.error = error
        self.target_name = inner.target_name

    def status(self, provider_job_id: str):
        from router.providers.base import ProviderState, ProviderStatus

        return ProviderStatus(provider_job_id, ProviderState.FAILED, error=self.error)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize(("error", "code"), [
    ("input refused: address 127.0.0.1 is not public", "input_rejected"),
    ("input download failed: ConnectError: connection refused", "input_unavailable"),
])
def test_a_render_failed_by_the_clients_input_never_counts_against_the_targets_circuit(stack, deps, error,
                                                                                       code) -> None:
    from router.models.job import JobStatus
    from router.services.submit import accept

    target = deps.providers[ProviderKind.LOCAL].target_name
    circuits.succeeded(deps, target)
    repo = deps.circuits
    repo.threshold, saved = 1, repo.threshold  # one counted failure would open it
    deps.providers[ProviderKind.LOCAL] = InputFailingAgent(deps.providers[ProviderKind.LOCAL], error)
    try:
        job = accept(VideoRequest.parse_at_edge(DRAFT), "acme", deps)
        assert stack.drain(lambda: deps.jobs.get("acme", job.id).status.terminal, timeout_s=60)
        job = deps.jobs.get("acme", job.id)
        assert job.status is JobStatus.FAILED
        assert job.attempts[0].reason is not None and str(job.attempts[0].reason).startswith(f"{code}: ")
        assert len(job.attempts) == 1  # the same input would fail the same way: no retry on the offer
        assert routing_context(deps).targets[ProviderKind.LOCAL].circuit is Circuit.CLOSED
    finally:
        repo.threshold = saved
