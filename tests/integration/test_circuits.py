"""Circuit breakers: state shared through DynamoDB, read into the policy's context, and routed around."""

from datetime import timedelta

from router.models.common import ProviderKind
from router.models.request import VideoRequest
from router.policy.context import Circuit
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
