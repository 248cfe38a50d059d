"""The studio's own RunPod serverless endpoint running worker-comfyui (docs/providers.md §2.5).

Offer → endpoint: a `runpod` offer whose `model` is not a public endpoint but a router.workflows model
(`runpod/wan22-14b-comfy` has `model: wan22-14b`) runs on the one endpoint HVR_RUNPOD_COMFY_ENDPOINT names. The
endpoint id is per deployment, so it lives in settings, not the catalog. It gets the same graph the local agent
gets (router.workflows, model file names from the same models.yaml: the endpoint's network volume must hold them).

worker-comfyui takes `{"workflow": graph, "images": [{"name", "image": base64}]}`, uploads each image under its
`name` (the graph's LoadImage names, INPUT_FILES) and answers `{"images": [{"filename", "type", "data"}]}`, where
SaveVideo's MP4 comes back base64, or as an `s3_url` when the endpoint has BUCKET_ENDPOINT_URL. Failures are
`error` plus `output.details`. No `cost` is stated: the bill is GPU seconds (`executionTime`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import httpx

from router.models.offer import Offer
from router.providers.base import ProviderState, ProviderStatus, Submission
from router.providers.errors import Rejected
from router.providers.inputs import fetch_input
from router.providers.runpod import CATALOG_ENDPOINTS, DEFAULT_BASE_URL, PUBLIC_ENDPOINTS, RunPodProvider
from router.workflows import INPUT_FILES, ModelFiles, ModelFilesError, WorkflowError, build_workflow, supported

# /run refuses bodies over 10 MB (docs/providers.md §2.1); base64 grows the inputs by a third.
MAX_RUN_BYTES = 10_000_000
MAX_INPUT_BYTES = 7_000_000
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov")


class RunPodComfyProvider(RunPodProvider):
    """Public WAN endpoints as RunPodProvider does, plus the workflow offers on the studio's comfy endpoint."""

    def __init__(self, api_key: str, comfy_endpoint: str, base_url: str = DEFAULT_BASE_URL,
                 webhook_token_secret: str | None = None, client: httpx.Client | None = None, *,
                 models: ModelFiles | None = None, allow_http_inputs: bool = False,
                 health_endpoints: Sequence[str] | None = None, health_ttl_s: float = 30.0) -> None:
        """`allow_http_inputs` lets inputs come over plain http (the embedded stack's loopback S3 only)."""
        if not comfy_endpoint:
            raise ValueError("RunPodComfyProvider needs the comfy endpoint id")
        super().__init__(api_key, base_url, webhook_token_secret, client, health_ttl_s=health_ttl_s,
                         health_endpoints=health_endpoints or (*CATALOG_ENDPOINTS, comfy_endpoint))
        self._comfy_endpoint = comfy_endpoint
        self._models = models
        self._allow_http_inputs = allow_http_inputs

    def supports(self, offer: Offer) -> bool:
        return super().supports(offer) or _is_workflow_offer(offer)

    def endpoint_of(self, offer: Offer) -> str | None:
        return self._comfy_endpoint if _is_workflow_offer(offer) else super().endpoint_of(offer)

    # --- RunPodProvider's overridable parts ----------------------------------------------------------------

    def _endpoint_id(self, submission: Submission) -> str:
        if _is_workflow_offer(submission.offer):
            return self._comfy_endpoint
        return super()._endpoint_id(submission)

    def _build_input(self, submission: Submission) -> dict[str, Any]:
        if not _is_workflow_offer(submission.offer):
            return super()._build_input(submission)
        offer, request = submission.offer, submission.request
        try:
            if self._models is None:
                self._models = ModelFiles.load()
            graph = build_workflow(offer, request, submission.delivered, self._models)
        except (WorkflowError, ModelFilesError) as exc:
            raise Rejected(f"no workflow for {offer.id} {request.mode.value}: {exc}") from exc
        images = []
        for kind, name in INPUT_FILES.items():
            if not _references(graph, name):
                continue
            url = submission.inputs.get(kind)
            if not url:
                raise Rejected(f"{offer.id} {request.mode.value} needs an {kind} input")
            data = fetch_input(url, kind, MAX_INPUT_BYTES, self._allow_http_inputs)
            images.append({"name": name, "image": base64.b64encode(data).decode()})
        fields: dict[str, Any] = {"workflow": graph}
        if images:
            fields["images"] = images
        # Checked before sending: RunPod would refuse it anyway, and refusing here can't leave a job behind.
        if len(json.dumps({"input": fields})) > MAX_RUN_BYTES:
            raise Rejected(f"the workflow and its inputs exceed RunPod's {MAX_RUN_BYTES}-byte /run limit")
        return fields

    def _parse(self, endpoint: str, job_id: str, data: dict[str, Any]) -> ProviderStatus:
        status = super()._parse(endpoint, job_id, data)
        if endpoint != self._comfy_endpoint:
            return status
        raw_output = data.get("output")
        output: dict[str, Any] = raw_output if isinstance(raw_output, dict) else {}
        if data.get("status") == "COMPLETED":
            return _completed(status, output)
        if data.get("status") == "FAILED":
            # The SDK lifts the handler's `error` to the top and leaves the rest (`details`: the node errors,
            # or the execution error with its node) as the output.
            details = output.get("details")
            if isinstance(details, list) and details:
                error = f"{status.error}: {'; '.join(str(d) for d in details)}"
                return dataclasses.replace(status, error=error[:1500])
        return status

    # --- helpers -------------------------------------------------------------------------------------------



def _is_workflow_offer(offer: Offer) -> bool:
    return offer.model not in PUBLIC_ENDPOINTS and any(supported(offer.model, mode) for mode in offer.modes)


def _references(graph: dict[str, Any], name: str) -> bool:
    return any(name in (node.get("inputs") or {}).values() for node in graph.values())


def _completed(status: ProviderStatus, output: dict[str, Any]) -> ProviderStatus:
    """The video among worker-comfyui's `images` (SaveVideo reports there), inline or as a URL."""
    items = [item for item in output.get("images") or [] if isinstance(item, dict)]
    video = next((item for item in items if str(item.get("filename", "")).lower().endswith(VIDEO_SUFFIXES)), None)
    succeeded = dataclasses.replace(status, state=ProviderState.SUCCEEDED, progress=1.0, error=None)
    if video is None:
        names = [str(item.get("filename")) for item in items]
        problem = f"worker-comfyui finished without a video (images: {names}, errors: {output.get('errors') or []})"
        return dataclasses.replace(status, state=ProviderState.FAILED, error=problem[:1500])
    data = video.get("data")
    if video.get("type") == "s3_url" and isinstance(data, str) and data:
        return dataclasses.replace(succeeded, output_url=data)
    if video.get("type") == "base64" and isinstance(data, str):
        try:
            return dataclasses.replace(succeeded, output_bytes=base64.b64decode(data, validate=True))
        except binascii.Error:
            pass
    return dataclasses.replace(status, state=ProviderState.FAILED,
                               error=f"worker-comfyui returned {video.get('filename')} as unreadable "
                                     f"{video.get('type')!r} data")
