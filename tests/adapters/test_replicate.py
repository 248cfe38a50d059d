"""Replicate: the official SDK and our adapter against the sandbox, webhooks, and the fault matrix."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import replicate
from replicate.exceptions import ReplicateError
from standardwebhooks.webhooks import Webhook

from hvr.sandbox.base import Fault, FaultPlan, Request, Response, SandboxServer, silent_wav
from hvr.sandbox.replicate import SCHEMAS, ReplicateSandbox, Timing, validate_input, version_id
from router.errors import WebhookRefused
from router.media.probe import probe
from router.models.common import Mode, new_id
from router.models.decision import DeliveredSpec
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.providers.base import ProviderState, ProviderStatus, Submission
from router.providers.errors import AuthFailed, OutcomeUnknown, RateLimited, Rejected, TransientError
from router.providers.replicate import (
    ReplicateProvider,
    attempt_seed,
    attempt_started_at,
    build_input,
    fetch_webhook_secret,
    make_client,
    parse_webhook,
    verify_webhook,
    webhook_id,
)

TOKEN = "r8_test_token"
RETRY_AFTER = 7
CATALOG = load_catalog()
REPLICATE_OFFERS = [offer for offer in CATALOG.offers if offer.provider.value == "replicate"]


# --- fixtures and helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def sandbox() -> Iterator[ReplicateSandbox]:
    timing = Timing(start_s=0.02, run_s=0.05, hang_s=1.5, retry_after_s=RETRY_AFTER, webhook_retry_s=0.01)
    with ReplicateSandbox((TOKEN,), timing=timing) as server:
        yield server


class Receiver(SandboxServer):
    """Our webhook endpoint's stand-in: records every POST and answers `answer`."""

    name = "receiver"

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Request] = []
        self.answer = 204
        self.route("POST", r"/v1/webhooks/replicate", self._hook)

    def _hook(self, request: Request) -> Response:
        self.received.append(request)
        return Response(self.answer, b"")


@pytest.fixture(scope="module")
def shared_receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def receiver(shared_receiver: Receiver) -> Receiver:
    shared_receiver.received.clear()
    shared_receiver.answer = 204
    return shared_receiver


def provider_for(sandbox: ReplicateSandbox, token: str = TOKEN) -> ReplicateProvider:
    # Short timeouts so TIMEOUT faults resolve fast; the real default is 10 s.
    return ReplicateProvider(token, sandbox.url, client=make_client(token, sandbox.url, timeout_s=0.5))


def attempt_id() -> str:
    return f"att_{new_id('job').removeprefix('job_')}_1"


def submission(offer_id: str = "replicate/wan-2.1-t2v-480p", *, delivered: DeliveredSpec | None = None,
               callback: str | None = None, inputs: dict[str, str] | None = None, seed: int | None = None,
               attempt: str | None = None) -> Submission:
    offer = CATALOG.get(offer_id)
    assert offer is not None
    mode = offer.modes[0]
    refs = {"image": "https://inputs.example/image.png", "audio": "https://inputs.example/audio.wav"}
    needed = {Mode.I2V: ("image",), Mode.S2V: ("image", "audio")}.get(mode, ())
    request = VideoRequest(mode=mode, prompt="a lighthouse at dusk", seed=seed, **{k: refs[k] for k in needed})
    attempt = attempt or attempt_id()
    return Submission(attempt_id=attempt, job_id="job_" + attempt.split("_")[1], tenant="t1", offer=offer,
                      request=request, delivered=delivered or DeliveredSpec(832, 480, 5, 16.0),
                      callback_url=callback, inputs=inputs or {})


def callback_url(receiver: Receiver) -> str:
    return f"{receiver.url}/v1/webhooks/replicate?tenant=t1&job=job_x"


def poll(provider: ReplicateProvider, job_id: str, tries: int = 400) -> ProviderStatus:
    for _ in range(tries):
        status = provider.status(job_id)
        if status.state.ended:
            return status
        time.sleep(0.01)
    raise AssertionError(f"{job_id} never ended")


def wait_for(condition: Callable[[], bool], tries: int = 500) -> None:
    for _ in range(tries):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition never held")


def predictions_for(sandbox: ReplicateSandbox, attempt: str) -> list[str]:
    """Predictions the sandbox holds for one attempt, by either marker lookup uses."""
    return [p.id for p in sandbox.predictions.values()
            if (p.webhook and f"attempt={attempt}" in p.webhook) or p.input.get("seed") == attempt_seed(attempt)]


def submit_reconciled(provider: ReplicateProvider, sub: Submission) -> tuple[ProviderStatus, list[str]]:
    """What the worker does: submit; on OutcomeUnknown look the attempt up and resubmit only if provably absent."""
    outcomes: list[str] = []
    for _ in range(10):
        try:
            return provider.submit(sub), [*outcomes, "submitted"]
        except OutcomeUnknown:
            outcomes.append("unknown")
        for _ in range(10):  # a failed lookup is retried later, never read as "absent"
            try:
                found = provider.lookup(sub.attempt_id)
                break
            except TransientError:
                outcomes.append("lookup failed")
        else:
            raise AssertionError(f"lookup never answered: {outcomes}")
        if found is not None:
            return found, [*outcomes, "found"]
        outcomes.append("absent")
    raise AssertionError(f"never settled: {outcomes}")


def data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode()}"


def png(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def wav(seconds: float) -> bytes:
    return silent_wav(seconds, rate=8000)


def signed(body: bytes, secret: str, msg_id: str = "msg_1", at: float | None = None) -> dict[str, str]:
    stamp = datetime.fromtimestamp(int(at if at is not None else time.time()), UTC)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, stamp, body.decode())}


# --- the official SDK, unchanged, pointed by base URL -------------------------------------------------------------


def test_official_sdk_creates_polls_and_gets_a_real_mp4(sandbox: ReplicateSandbox) -> None:
    client = replicate.Client(api_token=TOKEN, base_url=sandbox.url)
    client.poll_interval = 0.02
    prediction = client.predictions.create(model="wan-video/wan-2.2-t2v-fast",
                                           input={"prompt": "a fox", "aspect_ratio": "9:16"})
    assert prediction.status == "starting"
    assert prediction.urls is not None and prediction.urls["get"].endswith(prediction.id)
    prediction.wait()
    assert prediction.status == "succeeded"
    assert prediction.metrics is not None and prediction.metrics["predict_time"] > 0
    video = probe(httpx.get(prediction.output).content)
    assert (video.width, video.height, video.frames, video.fps) == (480, 832, 81, 16.0)  # the schema defaults
    assert [p.id for p in client.predictions.list().results] == [prediction.id]


def test_official_sdk_run_with_prefer_wait_and_by_version(sandbox: ReplicateSandbox) -> None:
    client = replicate.Client(api_token=TOKEN, base_url=sandbox.url)
    output = client.run("wavespeedai/wan-2.1-t2v-480p", input={"prompt": "rain", "num_frames": 9})
    assert isinstance(output, str) and output.startswith(sandbox.url)  # http URLs stay plain strings
    assert probe(httpx.get(output).content).frames == 9
    pinned = f"wavespeedai/wan-2.1-t2v-480p:{version_id('wavespeedai/wan-2.1-t2v-480p')}"
    assert isinstance(client.run(pinned, input={"prompt": "snow", "num_frames": 5}), str)
    assert ("POST", "/v1/predictions") in sandbox.calls  # the version form of create


def test_official_sdk_sees_problem_details(sandbox: ReplicateSandbox) -> None:
    client = replicate.Client(api_token=TOKEN, base_url=sandbox.url)
    with pytest.raises(ReplicateError) as invalid:
        client.models.predictions.create(model="wan-video/wan-2.2-t2v-fast",
                                         input={"prompt": "x", "num_frames": 5, "resolution": "4k"})
    assert invalid.value.status == 422
    assert "input.num_frames" in (invalid.value.detail or "") and "input.resolution" in (invalid.value.detail or "")
    with pytest.raises(ReplicateError) as unauthenticated:
        replicate.Client(api_token="r8_wrong", base_url=sandbox.url).predictions.list()
    assert unauthenticated.value.status == 401
    assert client.webhooks.default.secret().key == sandbox.webhook_secret
    assert not sandbox.predictions


# --- input mapping ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offer", REPLICATE_OFFERS, ids=lambda offer: offer.id)
def test_every_catalog_offer_maps_to_input_its_model_accepts(offer: Any) -> None:
    for size in offer.sizes:
        width, height = (int(side) for side in size.split("x"))
        frames = offer.frames.snap(offer.frames.max)
        sub = submission(offer.id, delivered=DeliveredSpec(width, height, frames, offer.fps.default),
                         inputs={"image": "https://in.example/i.png", "audio": "https://in.example/a.wav"})
        given = build_input(sub)
        _, invalid = validate_input(offer.model, given)
        assert invalid == [], (offer.id, size, invalid)
        assert set(given) <= set(SCHEMAS[offer.model]), "only fields the model's schema names"
    assert ReplicateProvider(TOKEN, client=object()).supports(offer)


def test_input_mapping_per_model() -> None:
    t2v = build_input(submission("replicate/wan-2.2-t2v-fast", delivered=DeliveredSpec(720, 1280, 97, 16.0), seed=9))
    assert t2v == {"prompt": "a lighthouse at dusk", "num_frames": 97, "frames_per_second": 16,
                   "aspect_ratio": "9:16", "resolution": "720p", "seed": 9}
    sub = submission("replicate/wan-2.1-i2v-480p", delivered=DeliveredSpec(480, 832, 81, 16.0),
                     inputs={"image": "https://in.example/i.png"})
    assert build_input(sub)["max_area"] == "480x832"
    assert build_input(sub)["seed"] == attempt_seed(sub.attempt_id)  # no seed asked: derived from the attempt
    s2v = build_input(submission("replicate/wan-2.2-s2v", inputs={"image": "https://i", "audio": "https://a"}))
    assert s2v == {"prompt": "a lighthouse at dusk", "image": "https://i", "audio": "https://a"}
    with pytest.raises(Rejected, match="image"):
        build_input(submission("replicate/wan-2.2-i2v-fast"))
    unmapped = CATALOG.get("replicate/wan-2.2-t2v-fast")
    assert unmapped is not None
    unmapped = unmapped.model_copy(update={"model": "wan-video/wan-9-t2v"})
    assert not ReplicateProvider(TOKEN, client=object()).supports(unmapped)
    with pytest.raises(Rejected, match="no input mapping"):
        build_input(replace(submission(), offer=unmapped))


def test_attempt_ids_bound_the_lookup_window() -> None:
    before = time.time()
    started = attempt_started_at(attempt_id())
    assert started is not None and before - 0.01 <= started <= time.time() + 0.01
    assert attempt_started_at("attempt-7") is None


def test_image_orientation_and_audio_length_shape_the_output(sandbox: ReplicateSandbox) -> None:
    provider = provider_for(sandbox)
    portrait = data_uri(png(90, 160), "image/png")
    i2v = provider.submit(submission("replicate/wan-2.2-i2v-fast", delivered=DeliveredSpec(480, 832, 81, 16.0),
                                     inputs={"image": portrait}))
    s2v = provider.submit(submission("replicate/wan-2.2-s2v", delivered=DeliveredSpec(832, 480, 24, 16.0),
                                     inputs={"image": data_uri(png(160, 90), "image/png"),
                                             "audio": data_uri(wav(1.5), "audio/wav")}))
    i2v_video = probe(httpx.get(poll(provider, i2v.provider_job_id).output_url or "").content)
    s2v_video = probe(httpx.get(poll(provider, s2v.provider_job_id).output_url or "").content)
    assert (i2v_video.width, i2v_video.height, i2v_video.frames) == (480, 832, 81)
    assert (s2v_video.width, s2v_video.height, s2v_video.frames) == (832, 480, 24)  # 1.5 s of audio at 16 fps


def test_unreadable_image_fails_the_prediction_not_the_create(sandbox: ReplicateSandbox) -> None:
    provider = provider_for(sandbox)
    created = provider.submit(submission("replicate/wan-2.1-i2v-480p", delivered=DeliveredSpec(832, 480, 81, 16.0),
                                         inputs={"image": data_uri(b"not an image", "image/png")}))
    ended = poll(provider, created.provider_job_id)
    assert ended.state is ProviderState.FAILED and "cannot identify image" in (ended.error or "")


# --- the adapter end to end ---------------------------------------------------------------------------------------


def test_adapter_submit_poll_succeed_and_fetch(sandbox: ReplicateSandbox) -> None:
    provider = provider_for(sandbox)
    sub = submission("replicate/wan-2.2-t2v-fast", delivered=DeliveredSpec(832, 480, 81, 16.0))
    created = provider.submit(sub)
    assert created.state in (ProviderState.QUEUED, ProviderState.RUNNING)
    assert created.provider_job_id in sandbox.predictions
    ended = poll(provider, created.provider_job_id)
    assert ended.state is ProviderState.SUCCEEDED and ended.output_url and ended.progress == 1.0
    assert ended.billed.gpu_seconds > 0 and ended.billed.output_seconds == 81 / 16
    assert ended.render_s == ended.billed.gpu_seconds
    video = probe(httpx.get(ended.output_url).content)
    assert (video.width, video.height, video.frames, video.fps) == (832, 480, 81, 16.0)
    assert sandbox.predictions[created.provider_job_id].input["num_frames"] == 81


def test_submit_errors_map_to_the_error_tree(sandbox: ReplicateSandbox) -> None:
    with pytest.raises(AuthFailed):
        provider_for(sandbox, token="r8_wrong").submit(submission())
    with pytest.raises(Rejected, match="422"):  # outside the model's frame range
        provider_for(sandbox).submit(submission("replicate/wan-2.2-t2v-fast"))
    assert not sandbox.predictions


def test_health_is_up_unless_auth_fails(sandbox: ReplicateSandbox) -> None:
    assert provider_for(sandbox).health().up
    assert not provider_for(sandbox, token="r8_wrong").health().up
    sandbox.plan.queue("get", Fault.RATE_LIMIT)
    throttled = provider_for(sandbox).health()
    assert throttled.up and "rate limited" in throttled.detail


# --- webhooks -----------------------------------------------------------------------------------------------------


def test_completion_webhook_verifies_and_names_the_attempt(sandbox: ReplicateSandbox, receiver: Receiver) -> None:
    provider = provider_for(sandbox)
    sub = submission(callback=callback_url(receiver))
    created = provider.submit(sub)
    wait_for(lambda: len(receiver.received) == 1)
    hook = receiver.received[0]
    secret = fetch_webhook_secret(make_client(TOKEN, sandbox.url))
    assert provider.webhook_signing_secret() == secret == sandbox.webhook_secret
    prediction = verify_webhook(hook.headers, hook.body, secret, now=time.time())
    assert prediction["id"] == created.provider_job_id and prediction["status"] == "succeeded"
    query = urlencode({name: values[0] for name, values in hook.query.items()})
    assert parse_webhook(hook.path, query, hook.headers, hook.body, [secret], now=time.time()) == (
        sub.attempt_id, "succeeded")
    assert webhook_id(hook.headers) == hook.headers["webhook-id"]
    assert sandbox.wait_idle()
    assert [d.event for d in sandbox.webhooks] == ["completed"]  # webhook_events_filter ["completed"] honoured


def test_sandbox_honours_other_event_filters(sandbox: ReplicateSandbox, receiver: Receiver) -> None:
    client = replicate.Client(api_token=TOKEN, base_url=sandbox.url)
    client.predictions.create(model="wavespeedai/wan-2.1-t2v-480p", input={"prompt": "x", "num_frames": 5},
                              webhook=callback_url(receiver), webhook_events_filter=["start", "completed"])
    client.predictions.create(model="wavespeedai/wan-2.1-t2v-480p", input={"prompt": "y", "num_frames": 5},
                              webhook=callback_url(receiver))
    wait_for(lambda: len(receiver.received) == 4)
    assert sandbox.wait_idle()
    events = sorted(d.event for d in sandbox.webhooks)
    assert events == ["completed", "completed", "output", "start"]  # no filter: outputs and completion
    assert len(receiver.received) == 4


def test_completion_webhook_is_retried_with_the_same_id(sandbox: ReplicateSandbox, receiver: Receiver) -> None:
    receiver.answer = 500
    provider_for(sandbox).submit(submission(callback=callback_url(receiver)))
    wait_for(lambda: len(receiver.received) == 4)  # first try + 3 retries
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_forged_stale_and_incomplete_webhooks_are_rejected(sandbox: ReplicateSandbox) -> None:
    secret = sandbox.webhook_secret
    body = json.dumps({"id": "p1", "status": "succeeded",
                       "webhook": "https://api.example/v1/webhooks/replicate?attempt=att_1"}).encode()
    now = time.time()
    assert verify_webhook(signed(body, secret), body, secret, now)["id"] == "p1"

    other = "whsec_" + base64.b64encode(b"k" * 32).decode()
    cases = {
        "forged": (signed(body, other), body, 401),
        "tampered": (signed(body, secret), body.replace(b"succeeded", b"failed"), 401),
        "stale": (signed(body, secret, at=now - 301), body, 401),
        "future": (signed(body, secret, at=now + 301), body, 401),
        "bad timestamp": ({**signed(body, secret), "webhook-timestamp": "yesterday"}, body, 400),
        "garbled signature": ({**signed(body, secret), "webhook-signature": "v1,%%%"}, body, 401),
    }
    for header in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        cases[f"no {header}"] = ({k: v for k, v in signed(body, secret).items() if k != header}, body, 400)
    for name, (headers, payload, status) in cases.items():
        with pytest.raises(WebhookRefused) as rejected:
            verify_webhook(headers, payload, secret, now)
        assert rejected.value.status == status, name

    assert verify_webhook(signed(body, secret), body, [other, secret], now)["id"] == "p1"  # rotation
    with pytest.raises(WebhookRefused) as mismatch:
        parse_webhook("/v1/webhooks/replicate", "attempt=att_2", signed(body, secret), body, secret, now)
    assert mismatch.value.status == 400
    with pytest.raises(WebhookRefused):
        parse_webhook("/v1/webhooks/replicate", "tenant=t1", signed(body, secret), body, secret, now)


def test_duplicate_and_out_of_order_webhooks(sandbox: ReplicateSandbox, receiver: Receiver) -> None:
    provider = provider_for(sandbox)
    sandbox.plan.queue("webhook", Fault.DUPLICATE_WEBHOOK, Fault.OUT_OF_ORDER_WEBHOOK)
    provider.submit(submission(callback=callback_url(receiver)))
    wait_for(lambda: len(receiver.received) == 2)
    first, second = receiver.received
    assert webhook_id(first.headers) == webhook_id(second.headers) and first.body == second.body
    provider.submit(submission(callback=callback_url(receiver)))
    wait_for(lambda: len(receiver.received) == 4)
    secret = sandbox.webhook_secret
    final, stale = (verify_webhook(r.headers, r.body, secret, time.time()) for r in receiver.received[2:])
    assert (final["status"], stale["status"]) == ("succeeded", "starting")  # the stale one arrives last
    assert webhook_id(receiver.received[2].headers) != webhook_id(receiver.received[3].headers)


# --- the fault matrix ---------------------------------------------------------------------------------------------


def test_429_on_create_is_rate_limited_with_retry_after(sandbox: ReplicateSandbox) -> None:
    sandbox.plan.queue("create", Fault.RATE_LIMIT)
    with pytest.raises(RateLimited) as limited:
        provider_for(sandbox).submit(submission())
    assert limited.value.retry_after_s == RETRY_AFTER
    assert not sandbox.predictions


def test_429_on_poll_is_not_slept_through_by_the_sdk(sandbox: ReplicateSandbox) -> None:
    provider = provider_for(sandbox)
    created = provider.submit(submission())
    sandbox.plan.queue("get", Fault.RATE_LIMIT)
    with pytest.raises(RateLimited) as limited:
        provider.status(created.provider_job_id)
    assert limited.value.retry_after_s == RETRY_AFTER
    gets = [call for call in sandbox.calls if call == ("GET", f"/v1/predictions/{created.provider_job_id}")]
    assert len(gets) == 1  # the SDK's RetryTransport would have tried again after 7 s


def test_5xx_on_poll_is_transient_not_unknown(sandbox: ReplicateSandbox) -> None:
    provider = provider_for(sandbox)
    created = provider.submit(submission())
    sandbox.plan.queue("get", Fault.SERVER_ERROR)
    with pytest.raises(TransientError) as failed:
        provider.status(created.provider_job_id)
    assert not isinstance(failed.value, OutcomeUnknown)
    assert poll(provider, created.provider_job_id).state is ProviderState.SUCCEEDED


@pytest.mark.parametrize("fault, created", [
    (Fault.SERVER_ERROR, False),
    (Fault.TIMEOUT, False),
    (Fault.ACCEPT_THEN_DROP, True),
])
def test_unknown_submit_outcome_is_reconciled_never_paid_twice(
        sandbox: ReplicateSandbox, receiver: Receiver, fault: Fault, created: bool) -> None:
    provider = provider_for(sandbox)
    sub = submission(callback=callback_url(receiver))
    sandbox.plan.queue("create", fault)
    with pytest.raises(OutcomeUnknown) as unknown:
        provider.submit(sub)
    if fault is Fault.TIMEOUT:  # our client timeout fired; the SDK alone sends creates with no timeout at all
        assert isinstance(unknown.value.__cause__, httpx.TimeoutException)
    assert len(predictions_for(sandbox, sub.attempt_id)) == int(created)
    found = provider.lookup(sub.attempt_id)
    assert (found is not None) == created
    status, steps = submit_reconciled(provider, sub) if found is None else (found, ["found"])
    assert steps == (["found"] if created else ["submitted"])
    assert predictions_for(sandbox, sub.attempt_id) == [status.provider_job_id]


def test_lookup_without_a_webhook_finds_the_derived_seed(sandbox: ReplicateSandbox) -> None:
    provider = provider_for(sandbox)
    sub = submission()
    sandbox.plan.queue("create", Fault.ACCEPT_THEN_DROP)
    with pytest.raises(OutcomeUnknown):
        provider.submit(sub)
    found = provider.lookup(sub.attempt_id)
    assert found is not None and found.provider_job_id == predictions_for(sandbox, sub.attempt_id)[0]


def test_lookup_pages_through_the_window(receiver: Receiver) -> None:
    with ReplicateSandbox((TOKEN,), page_size=2) as paged:
        provider = provider_for(paged)
        ours = submission(callback=callback_url(receiver))
        provider.submit(ours)
        for _ in range(5):
            provider.submit(submission(callback=callback_url(receiver)))
        found = provider.lookup(ours.attempt_id)
        assert found is not None and found.provider_job_id == predictions_for(paged, ours.attempt_id)[0]
        assert provider.lookup(attempt_id()) is None  # all three pages seen, none is its
        list_calls = [call for call in paged.calls if call == ("GET", "/v1/predictions")]
        assert len(list_calls) == 3 + 3


def test_lookup_refuses_to_guess_when_a_prediction_has_no_marker(sandbox: ReplicateSandbox) -> None:
    # Created outside hvr: no webhook and no seed of ours, so it could be an attempt that used an explicit seed.
    replicate.Client(api_token=TOKEN, base_url=sandbox.url).predictions.create(
        model="wavespeedai/wan-2.1-t2v-480p", input={"prompt": "elsewhere", "num_frames": 5, "seed": 3})
    with pytest.raises(OutcomeUnknown, match="can't be told apart"):
        provider_for(sandbox).lookup(attempt_id())


def test_lookup_failure_is_unknown_not_absent(sandbox: ReplicateSandbox) -> None:
    sandbox.plan.queue("list", Fault.SERVER_ERROR)
    with pytest.raises(TransientError):
        provider_for(sandbox).lookup(attempt_id())


def test_failed_prediction_reports_error_and_bills_predict_time(sandbox: ReplicateSandbox) -> None:
    provider = provider_for(sandbox)
    sandbox.plan.queue("run", Fault.FAILED)
    ended = poll(provider, provider.submit(submission()).provider_job_id)
    assert ended.state is ProviderState.FAILED and "out of memory" in (ended.error or "")
    assert ended.billed.gpu_seconds > 0 and ended.output_url is None


def test_stuck_prediction_is_cancelled(sandbox: ReplicateSandbox) -> None:
    provider = provider_for(sandbox)
    sandbox.plan.queue("run", Fault.STUCK)
    created = provider.submit(submission())
    time.sleep(0.1)
    assert provider.status(created.provider_job_id).state is ProviderState.QUEUED
    cancelled = provider.cancel(created.provider_job_id)
    assert cancelled.state is ProviderState.CANCELLED
    assert provider.status(created.provider_job_id).state is ProviderState.CANCELLED
    assert provider.cancel(created.provider_job_id).state is ProviderState.CANCELLED  # idempotent


def test_output_expires_after_the_ttl(sandbox: ReplicateSandbox) -> None:
    provider = provider_for(sandbox)
    ended = poll(provider, provider.submit(submission()).provider_job_id)
    assert ended.output_url and httpx.get(ended.output_url).status_code == 200
    sandbox.advance(3601)
    assert httpx.get(ended.output_url).status_code == 404
    expired = provider.status(ended.provider_job_id)
    assert expired.state is ProviderState.FAILED and "expired" in (expired.error or "")
    assert expired.billed.gpu_seconds == ended.billed.gpu_seconds


def test_output_expired_fault_404s_the_file(sandbox: ReplicateSandbox) -> None:
    provider = provider_for(sandbox)
    ended = poll(provider, provider.submit(submission()).provider_job_id)
    sandbox.plan.queue("download", Fault.OUTPUT_EXPIRED)
    assert ended.output_url and httpx.get(ended.output_url).status_code == 404
    assert httpx.get(ended.output_url).status_code == 404  # and stays gone


def test_fault_plan_by_rate_never_pays_twice(receiver: Receiver) -> None:
    plan = FaultPlan(rates={Fault.SERVER_ERROR: 0.3, Fault.ACCEPT_THEN_DROP: 0.3}, seed=5)
    with ReplicateSandbox((TOKEN,), plan=plan) as faulty:
        provider = provider_for(faulty)
        for _ in range(8):
            sub = submission(callback=callback_url(receiver))
            status, _ = submit_reconciled(provider, sub)
            assert predictions_for(faulty, sub.attempt_id) == [status.provider_job_id]
