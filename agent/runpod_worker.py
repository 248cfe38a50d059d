"""`python -m agent.runpod_worker`: the comfyui engine as a RunPod serverless worker, worker-comfyui's contract.

The studio's own RunPod endpoint then runs exactly the graphs its local box runs, through the same engine code. The
job input is worker-comfyui's (docs/providers.md §2.5) — `{"workflow": <API graph>, "images": [{"name", "image"}]}`,
images as base64 or data URIs, uploaded to ComfyUI and referenced by name — plus two optional hvr fields:
`inputs` (role → URL to fetch, as the agent's create body has them) and `output_put_url` (a presigned PUT).

The video goes to `output_put_url` when given (`{"video": {"bytes", "sha256", "content_type"}}`), else to the bucket
in `BUCKET_ENDPOINT_URL` through the SDK's `rp_upload` (`type: "s3_url"`), else back inline (`type: "base64"`), as
worker-comfyui answers. `gpu_seconds` comes along either way. Progress goes out with `progress_update` when the
worker runs on RunPod; in the SDK's local test mode (`--test_input`) it is logged instead, having nowhere to go.
ComfyUI is found at `$HVR_COMFYUI_URL` (default http://127.0.0.1:8188, where worker-comfyui's image runs it).
`inputs` URLs are fetched by the router's checked downloader (public addresses only, so never this box's ComfyUI);
`$HVR_AGENT_ALLOW_LOOPBACK_INPUTS=1` admits literal loopback ones, for tests.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import tempfile
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any

from agent.config import LOOPBACK_INPUTS_ENV
from agent.delivery import UploadError, upload
from agent.engines.base import EngineCancelled, EngineError
from agent.engines.comfyui import ComfyUIEngine
from router.workflows import INPUT_FILES

log = logging.getLogger("hvr.agent.runpod")

COMFYUI_URL_ENV = "HVR_COMFYUI_URL"
DEFAULT_COMFYUI_URL = "http://127.0.0.1:8188"
# Set by the RunPod platform; without it the SDK is in local test mode and progress has no endpoint to go to.
PLATFORM_ENV = "RUNPOD_WEBHOOK_POST_OUTPUT"
PROGRESS_INTERVAL_S = 2.0


class _BadInput(ValueError):
    pass


@cache
def _engine() -> ComfyUIEngine:
    # One engine per worker process: it holds the HTTP connection pool and the catalog figures.
    return ComfyUIEngine(os.environ.get(COMFYUI_URL_ENV, DEFAULT_COMFYUI_URL),
                         allow_loopback_inputs=os.environ.get(LOOPBACK_INPUTS_ENV, "").lower() in ("1", "true"))


def handler(job: dict[str, Any]) -> dict[str, Any]:
    try:
        workflow, files, put_url = _parse(job.get("input") or {})
    except _BadInput as exc:
        return {"error": str(exc)}
    with tempfile.TemporaryDirectory(prefix="hvr-runpod-") as tmp:
        out_path = Path(tmp) / f"{job['id']}.mp4"
        try:
            result = _engine().run(str(job["id"]), workflow, files, out_path, _Progress(job), threading.Event())
        except (EngineError, EngineCancelled) as exc:
            return {"error": str(exc)}
        return {**_deliver(job, out_path, put_url), "gpu_seconds": round(result.gpu_seconds, 3)}


def _parse(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bytes | str], str | None]:
    workflow = data.get("workflow")
    if isinstance(workflow, str):
        try:
            workflow = json.loads(workflow)
        except ValueError as exc:
            raise _BadInput(f"'workflow' is not valid JSON: {exc}") from exc
    if not isinstance(workflow, dict) or not workflow:
        raise _BadInput("'workflow' (a ComfyUI API-format graph) is required")
    files: dict[str, bytes | str] = {}
    for index, image in enumerate(data.get("images") or []):
        if not isinstance(image, dict) or not image.get("name") or not image.get("image"):
            raise _BadInput(f"images[{index}] needs 'name' and 'image'")
        encoded = str(image["image"]).split(",", 1)[-1]  # a data URI's payload follows the comma
        try:
            files[str(image["name"])] = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise _BadInput(f"images[{index}].image is not base64: {exc}") from exc
    for role, url in (data.get("inputs") or {}).items():
        if role not in INPUT_FILES:
            raise _BadInput(f"unknown input {role!r} (known: {sorted(INPUT_FILES)})")
        files[INPUT_FILES[role]] = str(url)
    put_url = data.get("output_put_url")
    return workflow, files, str(put_url) if put_url else None


def _deliver(job: dict[str, Any], out_path: Path, put_url: str | None) -> dict[str, Any]:
    if put_url:
        try:
            output = upload(out_path, put_url, "video/mp4")
        except UploadError as exc:
            return {"error": str(exc)}
        return {"video": output.model_dump()}
    if os.environ.get("BUCKET_ENDPOINT_URL"):
        from runpod.serverless.utils import rp_upload

        url = rp_upload.upload_image(job["id"], str(out_path))
        return {"images": [{"filename": out_path.name, "type": "s3_url", "data": url}]}
    data = base64.b64encode(out_path.read_bytes()).decode()
    return {"images": [{"filename": out_path.name, "type": "base64", "data": data}]}


class _Progress:
    """Throttled progress: RunPod's status endpoint shows the last one, so every step would only add load."""

    def __init__(self, job: dict[str, Any]) -> None:
        self._job = job
        self._last_at = 0.0

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self._last_at < PROGRESS_INTERVAL_S and fraction < 1.0:
            return
        self._last_at = now
        if os.environ.get(PLATFORM_ENV):
            from runpod.serverless import progress_update

            progress_update(self._job, {"progress": round(fraction, 3)})
        else:
            log.info("job %s progress %.3f", self._job.get("id"), fraction)


def main() -> None:
    import runpod

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runpod.serverless.start({"handler": handler})


if __name__ == "__main__":
    main()
