"""Explicit provider kind → adapter map, built from settings. Nothing registers itself at import."""

from __future__ import annotations

from router.models.common import ProviderKind
from router.providers.base import VideoProvider
from router.settings import Settings


def build_providers(settings: Settings) -> dict[ProviderKind, VideoProvider]:
    providers: dict[ProviderKind, VideoProvider] = {}
    agent_secret = settings.secret(settings.agent_secret, settings.agent_secret_arn)
    if settings.agent_url and agent_secret:
        from router.providers.agent import AgentProvider

        providers[ProviderKind.LOCAL] = AgentProvider(settings.agent_url, agent_secret, settings.agent_name)
    return providers
