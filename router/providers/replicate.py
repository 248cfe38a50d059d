"""Replicate through the official `replicate` SDK (docs/providers.md §1), plus its webhook verification.

The SDK is imported only where a client is built or its errors are caught: the webhook function imports this module
for `verify_webhook` and must stay light (tests/unit/test_lambda_imports.py).

Finding our prediction again (`lookup`): a prediction carries no field of ours, so two markers go into each create.
The webhook URL gets `&attempt=<attempt id>`; Replicate echoes `webhook` in prediction JSON (seen in captured
webhook bodies, which the docs say equal the GET object; the OpenAPI schema does not list it). And where the caller
gave no seed, the seed is derived from the attempt id, so `input.seed` marks it too. The attempt id embeds its
job's creation time (a ULID), which bounds when the prediction can have been created: lookup lists predictions
created since then (less clock skew) and answers None only when it has seen that whole window and every prediction
in it is provably someone else's.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from router.errors import WebhookRefused
from router.models.common import ProviderKind, iso
from router.models.offer import Offer, tier_of
from router.models.outcome import Billed
from router.providers.base import (
    ProviderState,
    ProviderStatus,
    Submission,
    TargetHealth,
    VideoProvider,
    status_error,
    translate_errors,
)
from router.providers.errors import (
    AuthFailed,
    NotFound,
    OutcomeUnknown,
    ProviderError,
    RateLimited,
    Rejected,
    TransientError,
)

if TYPE_CHECKING:
    import replicate

DEFAULT_BASE_URL = "https://api.replicate.com"
WEBHOOK_EVENTS = ["completed"]  # a webhook is only a hint to poll; the final state is the one worth a poll
LOOKUP_SKEW_S = 300  # our clock vs Replicate's when bounding the lookup window
LOOKUP_MAX_PAGES = 10  # 1000 predictions; beyond that lookup gives up with OutcomeUnknown
BILLED_FPS = 16  # WAN models on Replicate are priced "on the video duration at 16 fps" (§1.7)
WEBHOOK_TOLERANCE_S = 300

_STATES = {
    "starting": ProviderState.QUEUED,
    "processing": ProviderState.RUNNING,
    "succeeded": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
    "canceled": ProviderState.CANCELLED,
}
_TIER_NAMES = {480: "480p", 720: "720p"}
# The models build_input knows the schema of (docs/providers.md §1.7); others are refused rather than guessed at.
MAPPED_MODELS = frozenset({
    "wan-video/wan-2.2-t2v-fast", "wan-video/wan-2.2-i2v-fast", "wavespeedai/wan-2.1-t2v-480p",
    "wavespeedai/wan-2.1-i2v-480p", "wavespeedai/wan-2.1-i2v-720p", "wan-video/wan-2.2-s2v",
})
_ATTEMPT = re.compile(r"^att_([0-9A-HJKMNP-TV-Z]{26})_\d+$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PROGRESS = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)/(\d+)")  # tqdm lines in logs (SDK Prediction.Progress)
_RESETS_IN = re.compile(r"resets in ~?(\d+)\s*s")


# --- the client -------------------------------------------------------------------------------------------------


class _ErrorTransport(httpx.BaseTransport):
    """Sits under the SDK's RetryTransport: bounds every request's time, and turns 429 and 5xx answers into our
    errors before the SDK sees them.

    SDK 1.0.7 sends creates with `timeout=None`, which httpx reads as "no timeout at all": a create that hangs would
    hold the worker until Lambda kills it. The SDK also retries idempotent requests on 429/503/504 up to 10 times,
    sleeping through `Retry-After` (30 s is common), where the worker's own backoff should decide; and its
    `ReplicateError` drops the `Retry-After` header. Raised here, our error passes through the SDK untouched.
    """

    def __init__(self, inner: httpx.BaseTransport, timeout: httpx.Timeout) -> None:
        self._inner = inner
        self._timeout = timeout.as_dict()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if all(value is None for value in (request.extensions.get("timeout") or {}).values()):
            request.extensions["timeout"] = self._timeout
        response = self._inner.handle_request(request)
        if response.status_code == 429 or response.status_code >= 500:
            response.read()
            response.close()
            creating = request.method == "POST" and request.url.path.endswith("/predictions")
            raise status_error(response, submitting=creating)
        return response

    def close(self) -> None:
        self._inner.close()


def make_client(api_token: str, base_url: str = DEFAULT_BASE_URL, timeout_s: float = 10.0) -> replicate.Client:
    """The official client, pointed by base URL, with our error transport and a bounded timeout."""
    import replicate

    timeout = httpx.Timeout(timeout_s, connect=min(3.0, timeout_s))
    return replicate.Client(api_token=api_token, base_url=base_url, timeout=timeout,
                            transport=_ErrorTransport(httpx.HTTPTransport(), timeout))


def fetch_webhook_secret(client: Any) -> str:
    """The account's webhook signing secret (`whsec_…`) from `GET /v1/webhooks/default/secret`."""
    with translate_errors(), _sdk_errors():
        return str(client.webhooks.default.secret().key)


@contextlib.contextmanager
def _sdk_errors(submitting: bool = False) -> Iterator[None]:
    """The SDK's exceptions → our error tree (httpx's are translate_errors' job)."""
    from pydantic.v1 import ValidationError
    from replicate.exceptions import ReplicateError

    try:
        yield
    except ReplicateError as exc:
        raise _api_error(exc, submitting) from exc
    except (ValidationError, json.JSONDecodeError) as exc:  # an answer we cannot read: it may still have worked
        raise (OutcomeUnknown if submitting else TransientError)(f"unreadable Replicate answer: {exc}") from exc


def _api_error(exc: Any, submitting: bool) -> ProviderError:
    code = int(exc.status or 0)
    detail = f"Replicate HTTP {code}: {exc.title or ''} {exc.detail or ''}".strip()
    if code in (401, 403):
        return AuthFailed(detail)
    if code == 404:
        return NotFound(detail)
    if code == 429:  # only with an injected client: make_client's transport raises these itself
        hint = _RESETS_IN.search(exc.detail or "")
        return RateLimited(detail, float(hint[1]) if hint else None)
    if code >= 500:
        return OutcomeUnknown(detail) if submitting else TransientError(detail)
    return Rejected(detail)


# --- inputs -------------------------------------------------------------------------------------------------------


def attempt_seed(attempt_id: str) -> int:
    """The seed an attempt uses when the request names none: stable per attempt, so it also marks the prediction."""
    return int.from_bytes(hashlib.sha256(attempt_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


def webhook_url(callback_url: str, attempt_id: str) -> str:
    separator = "&" if urlsplit(callback_url).query else ("" if callback_url.endswith("?") else "?")
    return f"{callback_url}{separator}{urlencode({'attempt': attempt_id})}"


def build_input(submission: Submission) -> dict[str, Any]:
    """The model's `input` for this attempt (docs/providers.md §1.7), from the delivered spec rather than the request:
    the delivered spec is what the router priced and promised."""
    model = submission.offer.model.split(":", 1)[0]
    spec, request = submission.delivered, submission.request
    landscape = spec.width >= spec.height
    tier = _TIER_NAMES.get(tier_of(min(spec.width, spec.height)))
    seed = request.seed if request.seed is not None else attempt_seed(submission.attempt_id)
    timing = {"num_frames": spec.frames, "frames_per_second": round(spec.fps)}

    def needs(name: str) -> str:
        url = submission.inputs.get(name)
        if not url:
            raise Rejected(f"{model} needs an {name} input")
        return url

    def tier_name() -> str:
        if tier is None:
            raise Rejected(f"{model} renders 480p or 720p, not {spec.width}x{spec.height}")
        return tier

    if model == "wan-video/wan-2.2-t2v-fast":
        return {"prompt": request.prompt, **timing, "aspect_ratio": "16:9" if landscape else "9:16",
                "resolution": tier_name(), "seed": seed}
    if model == "wan-video/wan-2.2-i2v-fast":  # the aspect follows the image; no aspect_ratio field
        return {"prompt": request.prompt, "image": needs("image"), **timing, "resolution": tier_name(),
                "seed": seed}
    if model == "wavespeedai/wan-2.1-t2v-480p":
        return {"prompt": request.prompt, **timing, "aspect_ratio": "16:9" if landscape else "9:16", "seed": seed}
    if model in ("wavespeedai/wan-2.1-i2v-480p", "wavespeedai/wan-2.1-i2v-720p"):
        return {"prompt": request.prompt, "image": needs("image"), **timing,
                "max_area": f"{spec.width}x{spec.height}", "seed": seed}
    if model == "wan-video/wan-2.2-s2v":  # length follows the audio; only these three fields are known
        return {"prompt": request.prompt, "image": needs("image"), "audio": needs("audio")}
    raise Rejected(f"no input mapping for Replicate model {submission.offer.model}")


# --- the adapter --------------------------------------------------------------------------------------------------


class ReplicateProvider(VideoProvider):
    kind = ProviderKind.REPLICATE

    def __init__(self, api_token: str, base_url: str = DEFAULT_BASE_URL, webhook_secret: str | None = None,
                 client: Any = None) -> None:
        self._client = client if client is not None else make_client(api_token, base_url)
        self.webhook_secret = webhook_secret

    @property
    def target_name(self) -> str:
        return "replicate"

    def supports(self, offer: Offer) -> bool:
        return offer.model.split(":", 1)[0] in MAPPED_MODELS

    def webhook_signing_secret(self) -> str:
        """The secret webhooks are verified with: the configured one, else the account's, fetched once."""
        if self.webhook_secret is None:
            self.webhook_secret = fetch_webhook_secret(self._client)
        return self.webhook_secret

    def _submit(self, submission: Submission) -> ProviderStatus:
        params: dict[str, Any] = {"input": build_input(submission)}
        if submission.callback_url:
            params["webhook"] = webhook_url(submission.callback_url, submission.attempt_id)
            params["webhook_events_filter"] = WEBHOOK_EVENTS
        ref = submission.offer.model
        owner_name, _, version = ref.partition(":")
        if owner_name.count("/") != 1:
            raise Rejected(f"Replicate model must be owner/name[:version], not {ref!r}")
        with _sdk_errors(submitting=True):
            if version:
                prediction = self._client.predictions.create(version=ref, **params)
            else:
                prediction = self._client.models.predictions.create(model=owner_name, **params)
        return _to_status(prediction.dict())

    def _lookup(self, attempt_id: str) -> ProviderStatus | None:
        started = attempt_started_at(attempt_id)
        window_start = started - LOOKUP_SKEW_S if started is not None else None
        path = "/v1/predictions"
        if window_start is not None:
            path += "?" + urlencode({"created_after": iso(datetime.fromtimestamp(window_start, UTC))})
        undecided: list[str] = []
        covered = False
        with _sdk_errors():
            for _ in range(LOOKUP_MAX_PAGES):
                # The raw page, not SDK objects: the SDK's Prediction model drops the echoed `webhook`.
                page = self._client._request("GET", path).json()
                for data in page.get("results") or []:
                    created = _timestamp(data.get("created_at"))
                    if window_start is not None and created is not None and created < window_start:
                        covered = True  # newest first: the rest is older still
                        break
                    verdict = _is_ours(data, attempt_id)
                    if verdict:
                        return _to_status(data)
                    if verdict is None:
                        undecided.append(str(data.get("id")))
                if covered:
                    break
                path = page.get("next")
                if not path:
                    covered = True
                    break
        if covered and not undecided:
            return None
        reason = (f"{len(undecided)} predictions in the window can't be told apart ({', '.join(undecided[:5])})"
                  if undecided else f"the window spans more than {LOOKUP_MAX_PAGES} pages")
        raise OutcomeUnknown(f"can't tell whether {attempt_id} reached Replicate: {reason}")

    def _status(self, provider_job_id: str) -> ProviderStatus:
        with _sdk_errors():
            prediction = self._client.predictions.get(provider_job_id)
        return _to_status(prediction.dict())

    def _cancel(self, provider_job_id: str) -> ProviderStatus:
        with _sdk_errors():
            prediction = self._client.predictions.cancel(provider_job_id)
        return _to_status(prediction.dict())

    def _health(self) -> TargetHealth:
        """Replicate publishes no queue depth or status endpoint: up unless the token fails (or the API is
        unreachable), with no queue wait. One authenticated `GET /v1/account` checks the token."""
        try:
            with _sdk_errors():
                account = self._client.accounts.current()
        except RateLimited as exc:
            return TargetHealth(name=self.target_name, up=True, detail=f"rate limited: {exc}")
        return TargetHealth(name=self.target_name, up=True, detail=f"authenticated as {account.username}; "
                            "Replicate exposes no queue depth")


def attempt_started_at(attempt_id: str) -> float | None:
    """Epoch seconds of the job an attempt id belongs to (`att_<job ULID>_<n>`): no attempt's prediction can
    predate it. None for ids of another shape."""
    match = _ATTEMPT.match(attempt_id)
    if match is None:
        return None
    millis = 0
    for char in match[1][:10]:  # a ULID's first 10 characters are its 48-bit millisecond time
        millis = millis * 32 + _CROCKFORD.index(char)
    return millis / 1000


def _attempt_param(url: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get("attempt")
    return values[0] if values else None


def _is_ours(data: Mapping[str, Any], attempt_id: str) -> bool | None:
    """True: our attempt's prediction; False: provably not; None: no marker to tell by."""
    hook = data.get("webhook")
    if isinstance(hook, str) and hook:
        return _attempt_param(hook) == attempt_id
    given = data.get("input") or {}
    if isinstance(given, Mapping) and given.get("seed") == attempt_seed(attempt_id):
        return True
    return None  # no webhook echoed and no derived seed: an explicit seed or removed data could hide ours


def _timestamp(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        # Replicate writes nanoseconds ("…40.156272412Z"), which fromisoformat refuses: keep microseconds.
        trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
        try:
            parsed = datetime.fromisoformat(trimmed)
        except ValueError:
            return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _output_url(output: Any) -> str | None:
    if isinstance(output, str) and output:
        return output
    if isinstance(output, list):
        return next((item for item in output if isinstance(item, str) and item), None)
    return None


def _progress(logs: Any) -> float:
    for line in reversed(str(logs or "").splitlines()):
        match = _PROGRESS.match(line)
        if match:
            return min(1.0, int(match[1]) / 100)
    return 0.0


def _to_status(data: Mapping[str, Any]) -> ProviderStatus:
    state = _STATES.get(str(data.get("status")))
    if state is None:
        raise TransientError(f"unknown Replicate status {data.get('status')!r}")
    metrics = data.get("metrics") or {}
    predict_time = metrics.get("predict_time")
    # Failed predictions bill their predict time too.
    gpu_seconds = float(predict_time) if predict_time is not None else None
    output_seconds = None
    error = None if data.get("error") is None else str(data["error"])
    output_url = _output_url(data.get("output"))
    if state is ProviderState.SUCCEEDED:
        frames = (data.get("input") or {}).get("num_frames")
        if isinstance(frames, int | float) and not isinstance(frames, bool):
            output_seconds = float(frames) / BILLED_FPS
        if output_url is None:  # the hour is up (or the model gave nothing): there is nothing to fetch
            state = ProviderState.FAILED
            error = ("output expired: Replicate removed the prediction's data" if data.get("data_removed")
                     else "no output: expired (Replicate deletes API outputs after an hour) or never produced")
    progress = 1.0 if state.ended else _progress(data.get("logs"))
    return ProviderStatus(
        provider_job_id=str(data["id"]),
        state=state,
        progress=progress,
        billed=Billed(gpu_seconds, output_seconds),
        error=error,
        output_url=output_url if state is ProviderState.SUCCEEDED else None,
        render_s=float(predict_time) if predict_time is not None else None,
    )


# --- webhooks -----------------------------------------------------------------------------------------------------




def webhook_id(headers: Mapping[str, str]) -> str | None:
    """The Standard Webhooks message id: stable across Replicate's retries, so the caller dedupes on it."""
    return {k.lower(): v for k, v in headers.items()}.get("webhook-id") or None


def verify_webhook(headers: Mapping[str, str], body: bytes, secret: str | Sequence[str], now: float,
                   tolerance_s: int = WEBHOOK_TOLERANCE_S) -> dict[str, Any]:
    """The prediction a Replicate webhook carries, once its Standard Webhooks signature checks out.

    The timestamp is checked here against `now` (the SDK's validator skips it by default and the standardwebhooks
    library only reads the wall clock); several secrets may be given during a rotation. Signatures are compared
    in constant time over the exact bytes received.
    """
    from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (lower.get(k) for k in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and stamp and signatures):
        raise WebhookRefused(400, "missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        sent_at = int(stamp)
    except ValueError as exc:
        raise WebhookRefused(400, "webhook-timestamp is not an integer") from exc
    if abs(now - sent_at) > tolerance_s:
        raise WebhookRefused(401, f"webhook-timestamp is {now - sent_at:.0f} s off (tolerance {tolerance_s} s)")
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise WebhookRefused(400, "body is not UTF-8") from exc
    given = [_signature_bytes(item) for item in signatures.split() if item.startswith("v1,")]
    moment = datetime.fromtimestamp(sent_at, UTC)
    for key in [secret] if isinstance(secret, str) else list(secret):
        try:
            expected = base64.b64decode(Webhook(key).sign(msg_id, moment, text).split(",", 1)[1])
        except (binascii.Error, ValueError, RuntimeError, EmptyWebhookSecretError) as exc:
            raise WebhookRefused(500, "the configured Replicate webhook secret is malformed") from exc
        if any(candidate is not None and hmac.compare_digest(candidate, expected) for candidate in given):
            break
    else:
        raise WebhookRefused(401, "no webhook-signature matches")
    try:
        prediction = json.loads(text)
    except ValueError as exc:
        raise WebhookRefused(400, "body is not JSON") from exc
    if not isinstance(prediction, dict) or "id" not in prediction or "status" not in prediction:
        raise WebhookRefused(400, "body is not a prediction")
    return prediction


def parse_webhook(raw_path: str, raw_query: str, headers: Mapping[str, str], body: bytes,
                  secrets: str | Sequence[str], now: float) -> tuple[str, str]:
    """(attempt id, prediction status) of a verified webhook, for the webhook function; a hint to poll only."""
    prediction = verify_webhook(headers, body, secrets, now)
    attempt = parse_qs(raw_query).get("attempt", [""])[0]
    if not attempt:
        raise WebhookRefused(400, f"{raw_path} was called without an attempt")
    echoed = prediction.get("webhook")
    if isinstance(echoed, str) and _attempt_param(echoed) not in (None, attempt):
        raise WebhookRefused(400, "the signed body names another attempt than the URL")
    return attempt, str(prediction["status"])


def _signature_bytes(item: str) -> bytes | None:
    try:
        return base64.b64decode(item.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return None
