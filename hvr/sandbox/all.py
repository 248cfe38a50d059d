"""The cloud provider sandboxes together: what `hvr dev` points its adapters at, and `hvr sandbox` serves alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hvr.sandbox.base import Pace, catalog_render_model

RUNPOD_KEY = "sandbox-runpod-key"
REPLICATE_TOKEN = "r8_sandbox"
VEO_KEY = "sandbox-veo-key"
RUNPOD_COMFY_ENDPOINT = "studio-wan22"  # the studio's own worker-comfyui endpoint, as the sandbox names it
# Modelled seconds before a render starts: Replicate's official models and RunPod's public endpoints are warm.
START_S = 1.0


def paced(provider: str, time_scale: float) -> Pace:
    """A sandbox's pace in the embedded stack: renders as long as the catalog says, at the stack's time scale."""
    return Pace(time_scale, catalog_render_model(provider))


@dataclass
class Sandboxes:
    """The cloud sandboxes in the stack's modelled time: each job runs its catalog render time over `time_scale`
    and reports modelled times, so billed units are what the real providers would bill (Veo bills output
    seconds and reports no times: nothing to scale)."""

    servers: dict[str, Any] = field(default_factory=dict)
    time_scale: float = 1.0

    def start(self) -> Sandboxes:
        from hvr.sandbox.replicate import ReplicateSandbox, Timing
        from hvr.sandbox.runpod import RunPodSandbox
        from hvr.sandbox.veo import VeoSandbox

        runpod, replicate = paced("runpod", self.time_scale), paced("replicate", self.time_scale)
        self.servers = {
            "runpod": RunPodSandbox(api_key=RUNPOD_KEY, comfy_endpoints=(RUNPOD_COMFY_ENDPOINT,),
                                    queue_s=runpod.wall(START_S), execution_s=None, pace=runpod).start(),
            "replicate": ReplicateSandbox(tokens=(REPLICATE_TOKEN,), pace=replicate,
                                          timing=Timing(start_s=replicate.wall(START_S), run_s=None)).start(),
            "veo": VeoSandbox(api_keys=(VEO_KEY,)).start(),
        }
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def env(self) -> dict[str, str]:
        """Settings that point the real adapters at the sandboxes (and let outputs come from loopback)."""
        return {
            "HVR_RUNPOD_API_KEY": RUNPOD_KEY,
            "HVR_RUNPOD_BASE_URL": f"{self.servers['runpod'].url}/v2",
            "HVR_RUNPOD_COMFY_ENDPOINT": RUNPOD_COMFY_ENDPOINT,
            "HVR_REPLICATE_API_TOKEN": REPLICATE_TOKEN,
            "HVR_REPLICATE_BASE_URL": self.servers["replicate"].url,
            "HVR_VEO_API_KEY": VEO_KEY,
            "HVR_VEO_BASE_URL": self.servers["veo"].url,
            "HVR_ALLOW_LOOPBACK_DOWNLOADS": "true",
        }


def describe(sandboxes: Sandboxes) -> list[str]:
    """What `hvr sandbox` prints for each sandbox: its URL, the one credential it checks for (read off the server,
    so what is printed is what it accepts) and how the provider's official SDK is pointed at it."""
    from hvr.sandbox.replicate import SCHEMAS

    runpod, replicate, veo = (sandboxes.servers[name] for name in ("runpod", "replicate", "veo"))
    endpoints = [*runpod.endpoints, *(f"{name} (worker-comfyui)" for name in runpod.comfy_endpoints)]
    token, = replicate.tokens
    key, = veo.api_keys
    oauth, = veo.tokens
    return [
        f"sandbox runpod: {runpod.url}/v2",
        f"  accepts the API key `{runpod.api_key}` only (Authorization: Bearer <key>, or the bare key)",
        f"  endpoints: {', '.join(endpoints)}",
        f'  runpod SDK: runpod.api_key = "{runpod.api_key}"; runpod.endpoint_url_base = "{runpod.url}/v2"',
        f"sandbox replicate: {replicate.url}",
        f"  accepts the API token `{token}` only (Authorization: Bearer <token> or Token <token>)",
        f"  models: {', '.join(SCHEMAS)}; webhooks signed with GET /v1/webhooks/default/secret",
        f'  replicate SDK: replicate.Client(api_token="{token}", base_url="{replicate.url}")',
        f"sandbox veo: {veo.url}",
        f"  accepts the API key `{key}` only (x-goog-api-key, or ?key=), or under /projects/… the OAuth token "
        f"`{oauth}` only (Authorization: Bearer)",
        f'  google-genai: genai.Client(vertexai=True, api_key="{key}", '
        f'http_options=types.HttpOptions(base_url="{veo.url}"))',
    ]


def serve(time_scale: float | None = None) -> int:
    """`hvr sandbox`: the sandboxes alone, each on its own loopback port, until interrupted; in `hvr dev`'s
    modelled time unless told another scale."""
    import signal
    import threading

    from hvr.timescale import default_time_scale

    scale = time_scale or default_time_scale()
    stopped = threading.Event()
    # SIGTERM and a closed terminal stop it as Ctrl-C does, so the sandboxes remove their temp folders.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stopped.set())
    sandboxes = Sandboxes(time_scale=scale).start()
    print(f"time scale {scale:.0f}x: renders take their catalog time over it; reported times are modelled", flush=True)
    print("\n".join(describe(sandboxes)), flush=True)
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandboxes.stop()
    return 0
