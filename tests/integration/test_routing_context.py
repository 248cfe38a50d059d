"""The policy's context from live provider health: each RunPod endpoint's own queue and warm workers, read from
/health on the sandbox by the real adapter, reach the engine as per-offer targets and price a cold start in."""

from decimal import Decimal

import pytest

from hvr.sandbox.all import RUNPOD_COMFY_ENDPOINT
from router.models.common import ProviderKind
from router.models.request import VideoRequest
from router.services.context import routing_context
from router.services.quote import quote

COMFY = "runpod/wan21-14b-comfy"
PREMIUM = {"mode": "t2v", "prompt": "a slow dolly past a vintage car", "resolution": "720p", "duration_s": 4,
           "quality": "premium", "model": COMFY, "deadline_s": 86400}


@pytest.fixture
def runpod(stack, deps):
    sandbox = stack.sandboxes.servers["runpod"]
    provider = deps.providers[ProviderKind.RUNPOD]
    saved = sandbox.idle_timeout_s
    yield sandbox, provider
    sandbox.idle_timeout_s = saved
    provider._health_cache = None


def fresh_context(deps, provider):
    provider._health_cache = None  # health is cached for 30 s; these tests change it in between
    return routing_context(deps)


def test_a_scaled_to_zero_endpoint_makes_its_offers_cold_and_dearer(runpod, deps) -> None:
    sandbox, provider = runpod
    offer = deps.catalog.get(COMFY)
    assert offer is not None and provider.endpoint_of(offer) == RUNPOD_COMFY_ENDPOINT

    warm = fresh_context(deps, provider)
    assert warm.offer_targets[COMFY].warm and warm.offer_targets[COMFY].name == "runpod"
    warm_quote = quote(VideoRequest.parse_at_edge(PREMIUM), deps).chosen

    # Workers scale to zero the moment they finish (earlier tests in this session may have used the endpoint).
    sandbox.idle_timeout_s = 1e-6
    cold = fresh_context(deps, provider)
    assert not cold.offer_targets[COMFY].warm
    assert cold.targets[ProviderKind.RUNPOD].up, "a cold endpoint is up, just slower to start"
    provider._health_cache = None
    cold_quote = quote(VideoRequest.parse_at_edge(PREMIUM), deps).chosen

    assert warm_quote is not None and cold_quote is not None and cold_quote.offer == warm_quote.offer == COMFY
    price = offer.pricing.usd_per_gpu_second
    assert price is not None
    cold_start = Decimal(str(offer.latency.cold_start_s))
    assert cold_quote.estimated_cost_usd - warm_quote.estimated_cost_usd == pytest.approx(price * cold_start,
                                                                                           abs=Decimal("0.0001"))
    assert (cold_quote.estimated_ready_at - warm_quote.estimated_ready_at).total_seconds() == pytest.approx(
        offer.latency.cold_start_s, abs=5)


def test_offers_of_providers_with_one_queue_keep_the_providers_target(deps) -> None:
    context = routing_context(deps)
    assert not any(o.startswith(("local/", "replicate/", "veo/")) for o in context.offer_targets)
    runpod = {o.id for o in deps.catalog.offers if o.provider is ProviderKind.RUNPOD}
    assert set(context.offer_targets) <= runpod
