"""Google Veo on Vertex AI through google-genai (docs/providers.md §3), in project mode or express mode (an API key).

google-genai is imported on first use, never at module import: it costs ~0.7 s, and the API and webhook functions
import this module's neighbours without ever calling Veo. Only Vertex mode is used: google-genai ≥3 refuses
`generate_videos` on the Gemini Developer API (§3.1).

Request mapping (`_submit`): model = the offer's `model`; `source` = the prompt plus, for i2v, the input image
(fetched by us from its presigned https URL and sent inline as `bytesBase64Encoded`, because Vertex cannot read our
bucket; a `gs://` input is passed through as `gcsUri`); config = `aspect_ratio` "16:9"/"9:16" from the delivered
size, `resolution` "720p"/"1080p" from its short side (left out for Veo 2, which has no such parameter),
`duration_seconds` = delivered frames / fps (Veo takes whole seconds at 24 fps), `number_of_videos` 1,
`negative_prompt` and `seed` from the request. `generate_audio`, `enhance_prompt` and `person_generation` keep the
service's defaults.

Outputs: by default no `storageUri` is sent, so Vertex returns the MP4 inline and `status()` hands it back as
`output_bytes`. With `output_gcs_uri` set, Vertex writes to `{output_gcs_uri}/{attempt id}/…` instead and
`status()` returns `output_url` = the object's storage.googleapis.com URL; the router's downloader fetches it
without Google credentials, so that only works for a bucket it may read (or a `storage_base_url` that signs).

What Veo can't do, and what follows:
- No search by our id (operations are named by Google; there is no client request id): `lookup()` raises
  OutcomeUnknown, so a submit whose answer was lost is never re-sent.
- No cancel in google-genai or the Veo REST reference: `cancel()` raises Rejected, the operation runs to its end
  and the router records its cost.
- No webhooks in Vertex mode (the SDK refuses `webhook_config` there; `pubsubTopic` delivers to Pub/Sub, not to
  us): the worker polls, so this module has no webhook parser.
- An operation doesn't say how long its video is: the provider job id is `{operation name}#{seconds}s` so that
  `status()` can bill `output_seconds` without probing the MP4.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from functools import cached_property
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from router.models.common import Mode, ProviderKind
from router.models.decision import DeliveredSpec
from router.models.offer import tier_of
from router.models.outcome import Billed
from router.providers.base import ProviderState, ProviderStatus, Submission, TargetHealth, VideoProvider
from router.providers.errors import (
    AuthFailed,
    NotFound,
    OutcomeUnknown,
    ProviderError,
    RateLimited,
    Rejected,
    TransientError,
    Unavailable,
)
from router.providers.inputs import fetch_input

if TYPE_CHECKING:
    from google.genai import Client
    from google.genai import errors as genai_errors
    from google.genai import types as genai_types

FPS = 24
RESOLUTIONS = {720: "720p", 1080: "1080p"}
MAX_INPUT_BYTES = 20 * 2**20
_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))
_GCS_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
# google.rpc.Code names, for the `error.code` of a failed operation.
_RPC_CODES = {1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
              6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
              10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
              15: "DATA_LOSS", 16: "UNAUTHENTICATED"}
HEALTH_PROBE_OPERATION = "hvr-health-probe"


class VeoProvider(VideoProvider):
    kind = ProviderKind.VEO
    cancellable = False

    def __init__(self, project: str | None, location: str = "us-central1", api_key: str | None = None,
                 base_url: str | None = None, client: Any = None, *, credentials: Any = None,
                 allow_http_inputs: bool = False, output_gcs_uri: str | None = None,
                 storage_base_url: str = "https://storage.googleapis.com", timeout_s: float = 60.0,
                 health_model: str = "veo-3.1-fast-generate-001") -> None:
        """`project` (OAuth: application default credentials, or `credentials`) or `api_key` (express mode), not
        both. `base_url` points the SDK elsewhere (the sandbox); `client` replaces the SDK client outright.
        `allow_http_inputs` lets input images come over plain http (the embedded stack's loopback S3 only)."""
        if client is None and bool(project) == bool(api_key):
            raise ValueError("Veo needs exactly one of a project (Vertex with OAuth) or an API key (express mode)")
        if output_gcs_uri is not None and not output_gcs_uri.startswith("gs://"):
            raise ValueError(f"output_gcs_uri must be gs://bucket/prefix, got {output_gcs_uri!r}")
        self._project, self._location, self._api_key = project, location, api_key
        self._base_url, self._injected, self._credentials = base_url, client, credentials
        self._allow_http_inputs, self._output_gcs_uri = allow_http_inputs, output_gcs_uri
        self._storage_base_url = storage_base_url.rstrip("/")
        self._timeout_s, self._health_model = timeout_s, health_model

    @property
    def target_name(self) -> str:
        return "veo"

    @cached_property
    def _client(self) -> Client:
        if self._injected is not None:
            return self._injected
        from google import genai
        from google.genai import types

        # No SDK retries (its default too): a retried create could start a second paid video.
        options = types.HttpOptions(base_url=self._base_url, timeout=int(self._timeout_s * 1000))
        if self._api_key:
            return genai.Client(vertexai=True, api_key=self._api_key, http_options=options)
        return genai.Client(vertexai=True, project=self._project, location=self._location,
                            credentials=self._credentials, http_options=options)

    # --- the provider seam ----------------------------------------------------------------------------------

    def _submit(self, submission: Submission) -> ProviderStatus:
        from google.genai import types

        request, model = submission.request, submission.offer.model
        seconds = _duration_s(submission.delivered)
        image = None
        if request.mode is Mode.I2V:
            url = submission.inputs.get("image")
            if not url:
                raise Rejected("i2v needs an input image")
            image = self._input_image(url)
        elif request.mode is not Mode.T2V:
            raise Rejected(f"Veo renders t2v and i2v, not {request.mode.value}")
        config = types.GenerateVideosConfig(
            number_of_videos=1,
            duration_seconds=seconds,
            aspect_ratio=_aspect_ratio(submission.delivered),
            resolution=None if model.startswith("veo-2") else _resolution(submission.delivered),
            negative_prompt=request.negative_prompt,
            seed=request.seed,
            output_gcs_uri=f"{self._output_gcs_uri.rstrip('/')}/{submission.attempt_id}/"
            if self._output_gcs_uri else None,
        )
        source = types.GenerateVideosSource(prompt=request.prompt, image=image)
        with sdk_errors(submitting=True):
            operation = self._client.models.generate_videos(model=model, source=source, config=config)
        if not operation.name:
            raise OutcomeUnknown("Veo accepted the request but named no operation to poll")
        return self._status_of(operation, f"{operation.name}#{seconds}s", seconds)

    def _lookup(self, attempt_id: str) -> ProviderStatus | None:
        raise OutcomeUnknown(f"Veo can't look up a job by our attempt id ({attempt_id}): operations are named by "
                             "Google and can't be listed or searched")

    def _status(self, provider_job_id: str) -> ProviderStatus:
        from google.genai import types

        name, seconds = parse_job_id(provider_job_id)
        with sdk_errors():
            operation = self._client.operations.get(types.GenerateVideosOperation.model_validate({"name": name}))
        return self._status_of(operation, provider_job_id, seconds)

    def _cancel(self, provider_job_id: str) -> ProviderStatus:
        raise Rejected(f"Veo operations can't be cancelled ({provider_job_id}): it runs to completion and is "
                       "billed if it renders")

    def _health(self) -> TargetHealth:
        """Up unless Google refuses our credentials: fetch a made-up operation, which only authentication can
        fail before "not found"."""
        from google.genai import types

        name = f"{self._model_prefix()}publishers/google/models/{self._health_model}/operations/" \
               f"{HEALTH_PROBE_OPERATION}"
        detail = "credentials accepted"
        try:
            with sdk_errors():
                self._client.operations.get(types.GenerateVideosOperation.model_validate({"name": name}))
        except (NotFound, Rejected):
            pass
        except RateLimited as exc:
            detail = f"rate limited: {exc}"
        return TargetHealth(name=self.target_name, up=True, detail=detail)

    # --- helpers --------------------------------------------------------------------------------------------

    def _model_prefix(self) -> str:
        return f"projects/{self._project}/locations/{self._location}/" if self._project and not self._api_key else ""

    def _status_of(self, operation: genai_types.GenerateVideosOperation, job_id: str,
                   seconds: int | None) -> ProviderStatus:
        if operation.error:
            code = operation.error.get("code")
            label = _RPC_CODES.get(code, f"code {code}") if isinstance(code, int) else "error"
            state = ProviderState.CANCELLED if code == 1 else ProviderState.FAILED
            return ProviderStatus(job_id, state, error=f"{label}: {operation.error.get('message', '')}".strip())
        if not operation.done:
            return ProviderStatus(job_id, ProviderState.RUNNING)
        result = operation.response or operation.result
        videos = [v.video for v in (result.generated_videos or []) if v.video] if result else []
        billed = Billed(output_seconds=float(seconds) if seconds is not None else None)
        for video in videos:
            if video.video_bytes:
                return ProviderStatus(job_id, ProviderState.SUCCEEDED, progress=1.0, billed=billed,
                                      output_bytes=video.video_bytes)
            if video.uri and video.uri.startswith("gs://"):
                return ProviderStatus(job_id, ProviderState.SUCCEEDED, progress=1.0, billed=billed,
                                      output_url=self._gcs_https_url(video.uri))
        filtered = (result.rai_media_filtered_count or 0) if result else 0
        if filtered:
            reasons = (result.rai_media_filtered_reasons if result else None) or []
            return ProviderStatus(job_id, ProviderState.FAILED, content_filtered=True,
                                  error="; ".join(reasons) or f"{filtered} video(s) removed by Veo's safety filter")
        return ProviderStatus(job_id, ProviderState.FAILED, error="Veo finished the operation without a video")

    def _gcs_https_url(self, uri: str) -> str:
        bucket, _, key = uri.removeprefix("gs://").partition("/")
        return f"{self._storage_base_url}/{bucket}/{quote(key)}"

    def _input_image(self, url: str) -> genai_types.Image:
        from google.genai import types

        if url.startswith("gs://"):
            suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
            if suffix not in _GCS_MIME:
                raise Rejected(f"input image {url} must be .png or .jpg/.jpeg")
            return types.Image(gcs_uri=url, mime_type=_GCS_MIME[suffix])
        data = fetch_input(url, "image", MAX_INPUT_BYTES, self._allow_http_inputs)
        mime = next((kind for magic, kind in _IMAGE_MAGIC if data.startswith(magic)), None)
        if mime is None:
            raise Rejected("Veo takes PNG or JPEG input images; the input is neither")
        return types.Image(image_bytes=data, mime_type=mime)



def parse_job_id(provider_job_id: str) -> tuple[str, int | None]:
    """(operation name, video seconds) from `{operation name}#{seconds}s`; a bare operation name has no seconds."""
    name, sep, suffix = provider_job_id.rpartition("#")
    if sep and suffix.endswith("s") and suffix[:-1].isdigit():
        return name, int(suffix[:-1])
    return provider_job_id, None


def _duration_s(delivered: DeliveredSpec) -> int:
    if not math.isclose(delivered.fps, FPS, abs_tol=0.01):
        raise Rejected(f"Veo renders {FPS} fps, not {delivered.fps:g}")
    seconds = delivered.frames / delivered.fps
    if not math.isclose(seconds, round(seconds), abs_tol=0.5 / FPS):
        raise Rejected(f"Veo renders whole seconds; {delivered.frames} frames at {FPS} fps is {seconds:.3f} s")
    return round(seconds)


def _aspect_ratio(delivered: DeliveredSpec) -> str:
    long, short = max(delivered.width, delivered.height), min(delivered.width, delivered.height)
    if delivered.width == delivered.height or not math.isclose(long / short, 16 / 9, rel_tol=0.05):
        raise Rejected(f"Veo renders 16:9 or 9:16, not {delivered.width}x{delivered.height}")
    return "16:9" if delivered.width > delivered.height else "9:16"


def _resolution(delivered: DeliveredSpec) -> str:
    tier = tier_of(min(delivered.width, delivered.height))
    if tier not in RESOLUTIONS:
        raise Rejected(f"Veo renders 720p or 1080p, not {delivered.width}x{delivered.height}")
    return RESOLUTIONS[tier]


@contextlib.contextmanager
def sdk_errors(submitting: bool = False) -> Iterator[None]:
    """google-genai and google-auth failures → the provider error tree.

    google-genai 3.x sends through httpx2 (a fork of httpx under its own namespace), whose exceptions
    base.translate_errors doesn't know, so they are translated here by the same rules: on submit, anything that
    fails after the request may have been sent is OutcomeUnknown."""
    import httpx2
    from google.auth import exceptions as auth_errors
    from google.genai import errors as genai_errors

    try:
        yield
    except genai_errors.APIError as exc:
        raise api_error(exc, submitting) from exc
    except httpx2.ConnectError as exc:  # nothing was sent
        raise Unavailable(f"connect failed: {exc}") from exc
    except (httpx2.TimeoutException, httpx2.TransportError) as exc:
        raise (OutcomeUnknown if submitting else Unavailable)(f"Veo transport: {exc!r}") from exc
    except auth_errors.TransportError as exc:  # the token refresh failed to connect: nothing reached Veo
        raise Unavailable(f"Google auth unreachable: {exc}") from exc
    except auth_errors.GoogleAuthError as exc:  # no application default credentials, refresh refused
        raise AuthFailed(f"Google credentials: {exc}") from exc


def api_error(exc: genai_errors.APIError, submitting: bool = False) -> ProviderError:
    code, text = exc.code, f"Veo HTTP {exc.code} {exc.status}: {exc.message}"
    if code == 429:
        return RateLimited(text, _retry_after_s(exc))
    if code in (401, 403) or "API_KEY_INVALID" in _reasons(exc):
        return AuthFailed(text)
    if code == 404:
        return Rejected(text) if submitting else NotFound(text)  # on create: no such model
    if code == 408 or code >= 500:
        return OutcomeUnknown(text) if submitting else TransientError(text)
    return Rejected(text)


def _details(exc: genai_errors.APIError) -> list[dict[str, Any]]:
    body = exc.details if isinstance(exc.details, dict) else {}
    error = body.get("error", body)
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _reasons(exc: genai_errors.APIError) -> set[str]:
    return {str(d.get("reason")) for d in _details(exc) if d.get("reason")}


def _retry_after_s(exc: genai_errors.APIError) -> float | None:
    """Retry-After if sent, else google.rpc.RetryInfo's `retryDelay` ("7s", "0.5s")."""
    headers = getattr(getattr(exc, "response", None), "headers", None)  # an httpx2 (or httpx) response
    header = headers.get("retry-after") if headers is not None else None
    if header and header.strip().isdigit():
        return float(header)
    for detail in _details(exc):
        delay = detail.get("retryDelay")
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo") and isinstance(delay, str):
            with contextlib.suppress(ValueError):
                return float(delay.removesuffix("s"))
    return None
