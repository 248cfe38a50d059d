"""Sample graphs of every workflow builder, so that what reads them covers a new builder without being told.

Every local (offer, mode) pair of `supported_pairs()` is built at each size its offer lists and at its shortest, a
middle and its longest frame count; then at every quality, once with every input a request can carry (a builder may
branch on an optional one) and, in camera mode, at every camera motion: every literal and every branch a builder has.
The node-schema deriver reads which classes they use; tests/workflows/test_object_info.py validates them against a
real ComfyUI's /object_info.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from router.models.common import Mode, ProviderKind, Quality
from router.models.decision import DeliveredSpec
from router.models.offer import Offer
from router.models.request import MODE_INPUTS, Camera, CameraMotion, VideoRequest
from router.policy.catalog import load_catalog
from router.workflows import ModelFiles, NodeSchema, build_workflow, supported_pairs

PROMPT = "a paper kite over a harbour"
SEED = 11


@dataclass(frozen=True)
class SampleGraph:
    model: str
    mode: Mode
    variant: str
    graph: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.model} {self.mode.value} {self.variant}"


def builder_graphs(schema: NodeSchema | None = None) -> list[SampleGraph]:
    """Every builder's sample graphs, each checked by `build_workflow` against `schema` (default: node_schema.json)."""
    models = ModelFiles.load()
    local = {offer.model: offer for offer in load_catalog().offers if offer.provider is ProviderKind.LOCAL}
    graphs = []
    for model, mode in supported_pairs():
        offer = local[model]
        for variant, request, (width, height), frames in _variants(offer, mode):
            delivered = DeliveredSpec(width, height, frames, offer.fps.default)
            graphs.append(SampleGraph(model, mode, variant, build_workflow(offer, request, delivered, models, schema)))
    return graphs


def _variants(offer: Offer, mode: Mode) -> Iterator[tuple[str, VideoRequest, tuple[int, int], int]]:
    sizes = sorted(offer.size_list)
    frame_counts = sorted({offer.frames.min, offer.frames.snap(50), offer.frames.max})
    base = _request(mode)
    for width, height in sizes:
        for frames in frame_counts:
            yield f"{width}x{height} {frames}f", base, (width, height), frames
    size, frames = sizes[0], offer.frames.snap(50)
    for quality in Quality:
        yield quality.value, _request(mode, quality=quality), size, frames
    yield "every input", _request(mode, inputs=sorted({name for names in MODE_INPUTS.values() for name in names})), \
        size, frames
    if mode is Mode.CAMERA:
        for motion in CameraMotion:
            yield motion.value, _request(mode, camera=Camera(motion=motion)), size, frames


def _request(mode: Mode, inputs: list[str] | None = None, **extra: Any) -> VideoRequest:
    """A request with the inputs its mode requires (or `inputs`), each an upload reference named after itself."""
    names = MODE_INPUTS.get(mode, ()) if inputs is None else inputs
    refs = {name: [f"s3://hvr-in/t/{name}"] if _is_list(name) else f"s3://hvr-in/t/{name}" for name in names}
    return VideoRequest(mode=mode, prompt=PROMPT, seed=SEED, **refs, **extra)


@cache
def _is_list(field: str) -> bool:
    schema = VideoRequest.model_json_schema()["properties"][field]
    return any(branch.get("type") == "array" for branch in schema.get("anyOf", [schema]))
