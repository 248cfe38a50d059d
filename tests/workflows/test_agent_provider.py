"""The router's agent adapter sends the builders' graph and the job's input URLs in the create body."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from router.models.common import Mode, ProviderKind
from router.models.decision import DeliveredSpec
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.providers.agent import AgentProvider
from router.providers.base import Submission
from router.providers.errors import Rejected
from router.workflows import ModelFiles

LOCAL = {o.model: o for o in load_catalog().offers if o.provider is ProviderKind.LOCAL}


def provider(sent: list[dict[str, Any]], models: ModelFiles | None = None) -> AgentProvider:
    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(201, json={"id": sent[-1]["attempt_id"], "status": "queued", "progress": 0.0})

    client = httpx.Client(base_url="http://agent.test", transport=httpx.MockTransport(answer))
    return AgentProvider("http://agent.test", "secret", client=client, models=models)


def submission(model: str, mode: Mode, **inputs: str) -> Submission:
    request = VideoRequest(mode=mode, prompt="a boat", seed=3, **{k: "s3://hvr-in/t/x" for k in inputs})
    return Submission(attempt_id="att_1", job_id="job_1", tenant="t", offer=LOCAL[model], request=request,
                      delivered=DeliveredSpec(832, 480, 33, 16), output_put_url="https://s3/put", inputs=inputs)


def test_create_body_carries_the_workflow_and_the_input_urls() -> None:
    sent: list[dict[str, Any]] = []

    provider(sent).submit(submission("wan21-14b", Mode.I2V, image="https://s3/get-image"))

    (body,) = sent
    assert body["inputs"] == {"image": "https://s3/get-image"}
    classes = {node["class_type"] for node in body["workflow"].values()}
    assert {"WanImageToVideo", "CLIPVisionEncode", "SaveVideo"} <= classes


def test_a_workflow_that_cannot_be_built_is_rejected_before_anything_is_sent() -> None:
    sent: list[dict[str, Any]] = []
    incomplete = ModelFiles(files={"wan21-14b": {"t2v": "x.safetensors"}}, unattested={})

    with pytest.raises(Rejected, match="text_encoder"):
        provider(sent, incomplete).submit(submission("wan21-14b", Mode.T2V))
    assert sent == []
