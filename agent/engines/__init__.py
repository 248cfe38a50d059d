"""Render engines behind one ABC (`base.Engine`); `build_engine` is the only place that picks one."""

from __future__ import annotations

from agent.config import AgentSettings
from agent.engines.base import Engine


def build_engine(settings: AgentSettings) -> Engine:
    # Imported here so that choosing an engine loads only that engine's dependencies.
    if settings.engine == "comfyui":
        from agent.engines.comfyui import ComfyUIEngine

        return ComfyUIEngine(settings.comfyui_url, settings.models_file,
                             allow_loopback_inputs=settings.allow_loopback_inputs,
                             runnable_ttl_s=settings.comfyui_cache_s)
    from agent.engines.sim import SimEngine

    return SimEngine(settings.models_file, time_scale=settings.time_scale)
