"""Veo on Vertex AI as google-genai 3.x speaks to it (docs/providers.md §3), on loopback.

Routes (api version `v1beta1`, which the SDK uses, or `v1`, which Google's REST samples use):

    POST /{v}/projects/{p}/locations/{l}/publishers/google/models/{model}:predictLongRunning    OAuth bearer
    POST /{v}/projects/{p}/locations/{l}/publishers/google/models/{model}:fetchPredictOperation  OAuth bearer
    POST /{v}/publishers/google/models/{model}:predictLongRunning                                API key
    POST /{v}/publishers/google/models/{model}:fetchPredictOperation                             API key
    GET  /gcs/{bucket}/{object}                   stand-in for https://storage.googleapis.com/{bucket}/{object}

The SDK prefixes `projects/{p}/locations/{l}/` when the client has a project (it then sends
`Authorization: Bearer <token>`), and leaves it off in express mode (an API key, sent as `x-goog-api-key`; Google's
REST samples put it in `?key=`, which is accepted too). The operation name repeats the form it was created under,
and the SDK polls the resource before `/operations/`, so an express client keeps using the short form.

Outputs: Vertex returns the video inline (`bytesBase64Encoded`) unless the request names `storageUri`, in which
case it writes `{storageUri}/{operation id}/sample_{n}.mp4` and answers `gcsUri` (the Veo REST reference's note
"if you didn't specify a Cloud Storage bucket URI in storageUri, then the videos object returns
bytesBase64Encoded strings"). google-genai exposes the first as `Video.video_bytes` and the second as `Video.uri`
(`gs://…`) with no bytes; on Vertex it cannot download a `gs://` URI itself. There is no GCS here, so the sandbox
keeps such objects and serves them at `/gcs/{bucket}/{object}`, the path form of storage.googleapis.com: point a
downloader's storage base URL at `{url}/gcs`.

Faults (`FaultPlan`) by call kind: "create" — RATE_LIMIT (429 RESOURCE_EXHAUSTED), SERVER_ERROR (503, no operation
created), TIMEOUT (hang then drop, no operation created), ACCEPT_THEN_DROP (operation created, answer lost), and
the operation's fate STUCK (never done), FAILED (done with `error`), CONTENT_FILTER (done, no videos,
`raiMediaFilteredCount`); "get" — RATE_LIMIT, SERVER_ERROR, TIMEOUT; "download" — OUTPUT_EXPIRED (404).
Vertex has no webhooks for Veo (google-genai rejects `webhook_config` in Vertex mode), so webhook faults don't apply.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from hvr.sandbox.base import Fault, FaultPlan, Handler, Request, Response, SandboxServer, render_mp4

FPS = 24  # every Veo model renders 24 fps (docs/providers.md §3.5)
_RESPONSE_TYPE = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
# Illustrative: the reference names the fields, not the wording Google uses for a filtered prompt.
RAI_REASON = ("The output was blocked by Vertex AI's responsible AI filters (sandbox: simulated content filter). "
              "Support codes: 90789179")


@dataclass(frozen=True)
class ModelLimits:
    durations_s: tuple[int, ...]
    resolutions: tuple[str, ...]
    resolution_param: bool  # Veo 2 has no `resolution` parameter (REST reference: "Veo 3 models only")
    default_duration_s: int = 8


_VEO2 = ModelLimits(durations_s=(5, 6, 7, 8), resolutions=("720p",), resolution_param=False)
_VEO3 = ModelLimits(durations_s=(4, 6, 8), resolutions=("720p", "1080p"), resolution_param=True)
MODELS: dict[str, ModelLimits] = {
    "veo-2.0-generate-001": _VEO2,
    **{model: _VEO3 for model in (
        "veo-3.0-generate-001", "veo-3.0-fast-generate-001", "veo-3.0-generate-preview",
        "veo-3.0-fast-generate-preview", "veo-3.1-generate-preview", "veo-3.1-fast-generate-preview",
        "veo-3.1-generate-001", "veo-3.1-fast-generate-001", "veo-3.1-lite-generate-001",
    )},
}
ASPECT_RATIOS = ("16:9", "9:16")
_SIZES = {("16:9", "720p"): (1280, 720), ("9:16", "720p"): (720, 1280),
          ("16:9", "1080p"): (1920, 1080), ("9:16", "1080p"): (1080, 1920)}
_PERSON_GENERATION = ("allow_adult", "dont_allow", "allow_all")
_IMAGE_MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
_CREATE_FAULTS = (Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.TIMEOUT, Fault.ACCEPT_THEN_DROP,
                  Fault.STUCK, Fault.FAILED, Fault.CONTENT_FILTER)
_FATES = (Fault.STUCK, Fault.FAILED, Fault.CONTENT_FILTER)
_GET_FAULTS = (Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.TIMEOUT)

_MODEL_PATH = r"/(?P<version>v1|v1beta1)/(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/)?" \
              r"publishers/google/models/(?P<model>[^/:]+)"


class ApiError(Exception):
    """A request the sandbox refuses, answered in Google's error shape."""

    def __init__(self, code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code, self.status, self.message, self.details = code, status, message, details

    def response(self) -> Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return Response(self.code, {"error": error})


@dataclass
class Spec:
    """What one operation renders, from the validated request."""

    model: str
    prompt: str
    width: int
    height: int
    duration_s: int
    sample_count: int
    storage_uri: str | None

    @property
    def frames(self) -> int:
        return self.duration_s * FPS


@dataclass
class Operation:
    name: str
    spec: Spec
    fate: Fault | None
    created_at: float
    polls: int = 0
    render: Future[Path] | None = None
    gcs_uris: list[str] = field(default_factory=list)


class VeoSandbox(SandboxServer):
    """Vertex Veo long-running operations with real MP4 outputs. `running_polls` fetches answer not-done before an
    operation can finish (and it finishes no sooner than `run_s` after creation, and once its MP4 is rendered)."""

    name = "veo"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, plan: FaultPlan | None = None, *,
                 api_keys: tuple[str, ...] = ("sandbox-veo-key",), tokens: tuple[str, ...] = ("sandbox-veo-token",),
                 run_s: float = 0.0, running_polls: int = 1, hang_s: float = 5.0, retry_delay_s: int = 7) -> None:
        super().__init__(host, port)
        self.plan = plan or FaultPlan()
        self.api_keys, self.tokens = api_keys, tokens
        self.run_s, self.running_polls, self.hang_s, self.retry_delay_s = run_s, running_polls, hang_s, retry_delay_s
        self.operations: dict[str, Operation] = {}
        self.requests: list[dict[str, Any]] = []  # accepted predictLongRunning bodies, in order
        self._lock = threading.Lock()
        # One render at a time: the sim encoder is CPU-bound and a 2-core box runs tests beside it.
        self._renderer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="veo-render")
        self._renders: dict[tuple[int, int, int, str], Future[Path]] = {}
        self._gcs: dict[tuple[str, str], Path] = {}
        self.route("POST", _MODEL_PATH + r":predictLongRunning", self._guard(self._create))
        self.route("POST", _MODEL_PATH + r":fetchPredictOperation", self._guard(self._fetch))
        self.route("GET", r"/gcs/(?P<bucket>[a-z0-9][a-z0-9._-]*)/(?P<object>.+)", self._download)

    def stop(self) -> None:
        super().stop()
        self._renderer.shutdown(wait=False, cancel_futures=True)

    # --- handlers ---------------------------------------------------------------------------------------------

    def _guard(self, handler: Handler) -> Handler:
        def guarded(request: Request) -> Response:
            try:
                self._authenticate(request)
                return handler(request)
            except ApiError as exc:
                return exc.response()

        return guarded

    def _http_fault(self, fault: Fault | None, request: Request) -> Response | None:
        """The answer for a fault that happens before the call does anything; None to carry on."""
        if fault is Fault.RATE_LIMIT:
            return self._rate_limited(request.params["model"])
        if fault is Fault.SERVER_ERROR:
            return ApiError(503, "UNAVAILABLE", "The service is currently unavailable.").response()
        if fault is Fault.TIMEOUT:
            return Response(hang_s=self.hang_s, drop=True)
        return None

    def _create(self, request: Request) -> Response:
        fault = self.plan.next("create", _CREATE_FAULTS)
        refused = self._http_fault(fault, request)
        if refused is not None:
            return refused
        spec = _validate(request.params["model"], _body(request))
        op_id = str(uuid.uuid4())
        name = f"{_resource(request)}/operations/{op_id}"
        operation = Operation(name, spec, fault if fault in _FATES else None, time.monotonic())
        if operation.fate is None:
            operation.render = self._render(spec)
        with self._lock:
            self.operations[name] = operation
            self.requests.append(request.json())
        if fault is Fault.ACCEPT_THEN_DROP:
            return Response(drop=True)
        # Vertex answers the create with the name only (the Veo REST reference's sample response).
        return Response(200, {"name": name})

    def _fetch(self, request: Request) -> Response:
        refused = self._http_fault(self.plan.next("get", _GET_FAULTS), request)
        if refused is not None:
            return refused
        body = _body(request)
        name = body.get("operationName")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "INVALID_ARGUMENT", "operationName is required.")
        if name.rpartition("/operations/")[0] != _resource(request):
            raise ApiError(400, "INVALID_ARGUMENT",
                           f"Operation {name} does not belong to {_resource(request)}.")
        with self._lock:
            operation = self.operations.get(name)
            if operation is None:
                raise ApiError(404, "NOT_FOUND", f"Operation {name} not found.")
            operation.polls += 1
            return Response(200, self._state(operation))

    def _download(self, request: Request) -> Response:
        if self.plan.next("download", (Fault.OUTPUT_EXPIRED,)) is Fault.OUTPUT_EXPIRED:
            return Response(404, b"No such object.", {"content-type": "text/plain"})
        path = self._gcs.get((request.params["bucket"], unquote(request.params["object"])))
        if path is None:
            return Response(404, b"No such object.", {"content-type": "text/plain"})
        return Response(200, path.read_bytes(), {"content-type": "video/mp4"})

    # --- operation state --------------------------------------------------------------------------------------

    def _state(self, operation: Operation) -> dict[str, Any]:
        running = {"name": operation.name, "done": False}
        if operation.fate is Fault.STUCK:
            return running
        if operation.polls <= self.running_polls or time.monotonic() - operation.created_at < self.run_s:
            return running
        if operation.fate is Fault.FAILED:
            return {"name": operation.name, "done": True,
                    "error": {"code": 13, "message": "Internal error encountered while generating the video."}}
        if operation.fate is Fault.CONTENT_FILTER:
            count = operation.spec.sample_count
            return {"name": operation.name, "done": True,
                    "response": {"@type": _RESPONSE_TYPE, "raiMediaFilteredCount": count,
                                 "raiMediaFilteredReasons": [RAI_REASON]}}
        assert operation.render is not None
        if not operation.render.done():
            return running
        path = operation.render.result()
        return {"name": operation.name, "done": True,
                "response": {"@type": _RESPONSE_TYPE, "raiMediaFilteredCount": 0,
                             "videos": self._videos(operation, path)}}

    def _videos(self, operation: Operation, path: Path) -> list[dict[str, Any]]:
        spec = operation.spec
        if spec.storage_uri is None:
            encoded = base64.b64encode(path.read_bytes()).decode()
            return [{"bytesBase64Encoded": encoded, "mimeType": "video/mp4"} for _ in range(spec.sample_count)]
        if not operation.gcs_uris:
            bucket, _, prefix = spec.storage_uri.removeprefix("gs://").partition("/")
            op_id = operation.name.rpartition("/")[2]
            for index in range(spec.sample_count):
                key = "/".join(part for part in (prefix.strip("/"), op_id, f"sample_{index}.mp4") if part)
                self._gcs[(bucket, key)] = path
                operation.gcs_uris.append(f"gs://{bucket}/{key}")
        return [{"gcsUri": uri, "mimeType": "video/mp4"} for uri in operation.gcs_uris]

    def _render(self, spec: Spec) -> Future[Path]:
        key = (spec.width, spec.height, spec.frames, spec.prompt)
        with self._lock:
            future = self._renders.get(key)
            if future is None:
                out = self.workdir / f"{uuid.uuid4().hex}.mp4"
                future = self._renderer.submit(render_mp4, out, spec.width, spec.height, spec.frames, FPS,
                                               spec.model, spec.prompt)
                self._renders[key] = future
        return future

    # --- auth and errors --------------------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        if request.params.get("project"):
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or token not in self.tokens:
                raise ApiError(401, "UNAUTHENTICATED",
                               "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                               "login cookie or other valid authentication credential.")
            return
        key = request.headers.get("x-goog-api-key") or (request.query.get("key") or [""])[0]
        if not key:
            raise ApiError(401, "UNAUTHENTICATED",
                           "Method doesn't allow unregistered callers (callers without established identity). "
                           "Please use API Key or other form of API consumer identity to call this API.")
        if key not in self.api_keys:
            raise ApiError(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                           [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                             "domain": "googleapis.com"}])

    def _rate_limited(self, model: str) -> Response:
        error = ApiError(
            429, "RESOURCE_EXHAUSTED",
            f"Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model with base "
            f"model: {model}. Please submit a quota increase request.",
            # google.rpc.RetryInfo is Google's standard retry hint; whether Veo's 429s carry it is unconfirmed.
            [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{self.retry_delay_s}s"}],
        )
        return error.response()


def _resource(request: Request) -> str:
    """The model resource as the client named it: with the project prefix or (express mode) without."""
    params = request.params
    prefix = f"projects/{params['project']}/locations/{params['location']}/" if params.get("project") else ""
    return f"{prefix}publishers/google/models/{params['model']}"


def _body(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError as exc:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object.")
    return body


def _invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def _validate(model: str, body: dict[str, Any]) -> Spec:
    """The model's documented limits (docs/providers.md §3.5), refused the way Vertex refuses: 400 INVALID_ARGUMENT."""
    limits = MODELS.get(model)
    if limits is None:
        raise ApiError(404, "NOT_FOUND", f"Publisher Model `publishers/google/models/{model}` was not found or your "
                                         f"project does not have access to it.")
    prompt = _check_instance(body.get("instances"))
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise _invalid("parameters must be an object.")
    duration = params.get("durationSeconds", limits.default_duration_s)
    if not isinstance(duration, int) or isinstance(duration, bool) or duration not in limits.durations_s:
        allowed = ", ".join(str(d) for d in limits.durations_s)
        raise _invalid(f"Unsupported durationSeconds {duration!r} for {model}; supported values: {allowed}.")
    aspect = params.get("aspectRatio", "16:9")
    if aspect not in ASPECT_RATIOS:
        raise _invalid(f"Unsupported aspectRatio {aspect!r}; supported values: 16:9, 9:16.")
    resolution = params.get("resolution", "720p")
    if "resolution" in params and not limits.resolution_param and resolution != "720p":
        raise _invalid(f"resolution is not supported by {model}.")
    if resolution not in limits.resolutions:
        raise _invalid(f"Unsupported resolution {resolution!r} for {model}; supported values: "
                       f"{', '.join(limits.resolutions)}.")
    sample_count = params.get("sampleCount", 1)
    if not isinstance(sample_count, int) or not 1 <= sample_count <= 4:
        raise _invalid(f"sampleCount must be between 1 and 4, got {sample_count!r}.")
    fps = params.get("fps", FPS)
    if fps != FPS:
        raise _invalid(f"Unsupported fps {fps!r}; {model} renders {FPS} fps.")
    seed = params.get("seed", 0)
    if not isinstance(seed, int) or not 0 <= seed <= 2**32 - 1:
        raise _invalid(f"seed must be between 0 and 4294967295, got {seed!r}.")
    if params.get("personGeneration", "allow_adult") not in _PERSON_GENERATION:
        raise _invalid(f"Unsupported personGeneration {params['personGeneration']!r}.")
    storage_uri = params.get("storageUri")
    if storage_uri is not None and (not isinstance(storage_uri, str) or not storage_uri.startswith("gs://")
                                    or len(storage_uri) <= len("gs://")):
        raise _invalid(f"storageUri must be a Cloud Storage URI (gs://bucket/path), got {storage_uri!r}.")
    width, height = _SIZES[(aspect, resolution)]
    return Spec(model, prompt or "(image prompt)", width, height, duration, sample_count, storage_uri)


def _check_instance(instances: Any) -> str | None:
    """The one instance's prompt, after checking it has a prompt or an image."""
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        raise _invalid("instances must hold exactly one instance.")
    instance = instances[0]
    prompt = instance.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise _invalid("instances[0].prompt must be a string.")
    if not prompt and "image" not in instance:
        raise _invalid("A text prompt is required for text-to-video (or give an image).")
    if "image" in instance:
        _check_image(instance["image"])
    return prompt


def _check_image(image: Any) -> None:
    if not isinstance(image, dict):
        raise _invalid("instances[0].image must be an object.")
    mime = image.get("mimeType")
    if mime not in _IMAGE_MAGIC:
        raise _invalid(f"Unsupported image mimeType {mime!r}; supported values: image/jpeg, image/png.")
    if ("bytesBase64Encoded" in image) == ("gcsUri" in image):
        raise _invalid("instances[0].image needs exactly one of bytesBase64Encoded and gcsUri.")
    if "gcsUri" in image:
        if not str(image["gcsUri"]).startswith("gs://"):
            raise _invalid("instances[0].image.gcsUri must be a gs:// URI.")
        return
    try:
        data = base64.b64decode(image["bytesBase64Encoded"], validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise _invalid(f"instances[0].image.bytesBase64Encoded is not valid base64: {exc}") from exc
    if not data.startswith(_IMAGE_MAGIC[mime]):
        raise _invalid(f"Unable to process the input image: the bytes are not {mime}.")
