"""Explicit provider kind → adapter map, built from settings. Nothing registers itself at import.

An adapter exists where its credentials do; pointed at a sandbox's base URL, the same adapter runs locally.
"""

from __future__ import annotations

from router.models.common import ProviderKind
from router.providers.base import VideoProvider
from router.settings import Settings


def build_providers(settings: Settings) -> dict[ProviderKind, VideoProvider]:
    providers: dict[ProviderKind, VideoProvider] = {}
    agent_secret = settings.secret(settings.agent_secret, settings.agent_secret_arn)
    boxes = settings.fleet()
    if boxes and agent_secret:
        from router.providers.agent import AgentProvider

        if settings.agents:  # a fleet: each box its own target, the engine places each job on one
            from router.providers.fleet import FleetProvider

            providers[ProviderKind.LOCAL] = FleetProvider(
                {name: AgentProvider(url, agent_secret, name) for name, url in boxes.items()})
        else:
            [(name, url)] = boxes.items()
            providers[ProviderKind.LOCAL] = AgentProvider(url, agent_secret, name)
    if settings.runpod_api_key and settings.runpod_comfy_endpoint:
        from router.providers.runpod_comfy import RunPodComfyProvider

        # One RunPod target: the public endpoints and the studio's own worker-comfyui endpoint.
        providers[ProviderKind.RUNPOD] = RunPodComfyProvider(
            settings.runpod_api_key, settings.runpod_comfy_endpoint, settings.runpod_base_url,
            webhook_token_secret=settings.webhook_token_secret,
            allow_http_inputs=settings.allow_loopback_downloads,
        )
    elif settings.runpod_api_key:
        from router.providers.runpod import RunPodProvider

        providers[ProviderKind.RUNPOD] = RunPodProvider(settings.runpod_api_key, settings.runpod_base_url,
                                                        webhook_token_secret=settings.webhook_token_secret)
    if settings.replicate_api_token:
        from router.providers.replicate import ReplicateProvider

        providers[ProviderKind.REPLICATE] = ReplicateProvider(settings.replicate_api_token,
                                                              settings.replicate_base_url)
    if settings.veo_project or settings.veo_api_key:
        from router.providers.veo import VeoProvider

        providers[ProviderKind.VEO] = VeoProvider(
            settings.veo_project if not settings.veo_api_key else None, settings.veo_location,
            api_key=settings.veo_api_key, base_url=settings.veo_base_url,
            allow_http_inputs=settings.allow_loopback_downloads,
        )
    return providers
