"""The cloud provider sandboxes together: what `hvr dev` points its adapters at, and `hvr sandbox` serves alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RUNPOD_KEY = "sandbox-runpod-key"
REPLICATE_TOKEN = "r8_sandbox"
VEO_KEY = "sandbox-veo-key"
RUNPOD_COMFY_ENDPOINT = "studio-wan22"  # the studio's own worker-comfyui endpoint, as the sandbox names it


@dataclass
class Sandboxes:
    servers: dict[str, Any] = field(default_factory=dict)

    def start(self) -> Sandboxes:
        from router.sandbox.replicate import ReplicateSandbox
        from router.sandbox.runpod import RunPodSandbox
        from router.sandbox.veo import VeoSandbox

        self.servers = {
            "runpod": RunPodSandbox(api_key=RUNPOD_KEY, comfy_endpoints=(RUNPOD_COMFY_ENDPOINT,)).start(),
            "replicate": ReplicateSandbox(tokens=(REPLICATE_TOKEN,)).start(),
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


def serve() -> int:
    """`hvr sandbox`: the sandboxes alone, each on its own loopback port, until interrupted."""
    import threading

    sandboxes = Sandboxes().start()
    for name, server in sandboxes.servers.items():
        print(f"sandbox {name}: {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandboxes.stop()
    return 0
