"""RunPod: the sandbox speaks the wire protocol the runpod SDK expects, and the adapter maps it into the router's
error tree and states — submit → poll → output, every scripted fault, cancel, health, webhook tokens, policy."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from hvr.sandbox.base import Fault, FaultPlan
from hvr.sandbox.runpod import RunPodSandbox
from router.errors import WebhookRefused
from router.media.probe import probe
from router.models.common import utcnow
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.policy.constraints import deliver
from router.providers.base import ProviderState, Submission
from router.providers.errors import AuthFailed, OutcomeUnknown, RateLimited, Rejected, TransientError, Unavailable
from router.providers.runpod import (
    RESULT_GRACE_S,
    RunPodProvider,
    policy_for,
    verify_webhook,
    webhook_token,
)

CATALOG = load_catalog()
SECRET = "webhook-token-secret"
IMAGE, AUDIO = "https://inputs.example.com/in.png?sig=1", "https://inputs.example.com/voice.wav?sig=2"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Receiver:
    """Our webhook endpoint's stand-in: records the raw query and body of every POST."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, bytes]] = []
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.hits.append((self.path.partition("?")[2], body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1/webhooks/runpod?tenant=t1&job=job_1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def wait_for(condition: Callable[[], bool], limit_s: float = 10.0) -> None:
    """Poll until true; the limit only stops a broken test from hanging, it asserts nothing about speed."""
    stop = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < stop, "condition never became true"
        time.sleep(0.02)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def server() -> Iterator[RunPodSandbox]:
    # One server for the module (stopping one costs half a second); each test gets it reset.
    with RunPodSandbox() as running:
        yield running


@pytest.fixture
def sandbox(server: RunPodSandbox, clock: FakeClock) -> RunPodSandbox:
    server.reset()
    server.plan, server.clock = FaultPlan(), clock
    server.queue_s, server.execution_s, server.hang_s, server.webhook_retry_delay_s = 0.2, 0.5, 1.0, 0.05
    server.idle_timeout_s = None
    return server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


def adapter(sandbox: RunPodSandbox, key: str | None = None, timeout_s: float = 5.0, **kwargs: Any) -> RunPodProvider:
    # Short client timeouts so the timeout faults cost well under a second.
    client = httpx.Client(base_url=f"{sandbox.url}/v2", timeout=timeout_s,
                          headers={"Authorization": f"Bearer {key or sandbox.api_key}"})
    return RunPodProvider(sandbox.api_key, f"{sandbox.url}/v2", SECRET, client, **kwargs)


def submission(offer_id: str = "runpod/wan-2-5", size: tuple[int, int] = (832, 480), mode: str = "i2v",
               inputs: dict[str, str] | None = None, attempt: str = "att_1", callback: str | None = None,
               deadline: datetime | None = None, **request: Any) -> Submission:
    offer = CATALOG.get(offer_id)
    assert offer is not None
    refs = {"image": IMAGE} if mode == "i2v" else {"image": IMAGE, "audio": AUDIO} if mode == "s2v" else {}
    video = VideoRequest.model_validate({"mode": mode, "prompt": "a red fox in snow", "duration_s": 5, **refs,
                                         **request})
    return Submission(attempt_id=attempt, job_id="job_1", tenant="t1", offer=offer, request=video,
                      delivered=deliver(offer, video, size), callback_url=callback,
                      inputs={"image": IMAGE} if inputs is None else inputs, deadline=deadline)


def poll_until_ended(provider: RunPodProvider, job: str, clock: FakeClock | None = None) -> Any:
    for _ in range(500):
        status = provider.status(job)
        if status.state.ended:
            return status
        if clock is not None:
            clock.advance(0.25)
        time.sleep(0.02)
    raise AssertionError("the job never ended")


# --- the runpod SDK, unchanged, pointed only by base URL ------------------------------------------------------


def test_runpod_sdk_runs_polls_and_reads_output(sandbox: RunPodSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    import runpod

    sandbox.clock, sandbox.queue_s, sandbox.execution_s = time.monotonic, 0.1, 0.2
    monkeypatch.setattr(runpod, "endpoint_url_base", f"{sandbox.url}/v2")
    monkeypatch.setattr(runpod, "api_key", sandbox.api_key)
    endpoint = runpod.Endpoint("wan-2-5")
    job = endpoint.run({"prompt": "a red fox in snow", "image": IMAGE, "size": "832*480", "duration": 5})
    assert job.status() in ("IN_QUEUE", "IN_PROGRESS")
    output = job.output(timeout=20)
    assert job.status() == "COMPLETED"
    assert output["cost"] == 0.25
    assert httpx.get(output["video_url"]).content[4:8] == b"ftyp"

    synced = endpoint.run_sync({"prompt": "a red fox in snow", "image": IMAGE, "size": "832*480", "duration": 5})
    assert synced["video_url"].endswith(".mp4")
    assert endpoint.health()["jobs"]["completed"] == 2
    assert endpoint.purge_queue() == {"removed": 0, "status": "completed"}
    assert endpoint.run({"prompt": "a fox", "image": IMAGE}).cancel()["status"] in ("CANCELLED", "COMPLETED")

    monkeypatch.setattr(runpod, "api_key", "wrong-key")
    with pytest.raises(RuntimeError, match="401"):
        runpod.Endpoint("wan-2-5").run({"prompt": "a fox"})


# --- adapter end to end ---------------------------------------------------------------------------------------


def test_submit_poll_complete_and_the_output_probes_to_the_delivered_size(sandbox: RunPodSandbox,
                                                                      receiver: Receiver) -> None:
    sandbox.clock, sandbox.queue_s, sandbox.execution_s = time.monotonic, 0.1, 0.3
    provider = adapter(sandbox)
    sub = submission(callback=receiver.url, deadline=utcnow() + timedelta(hours=1), negative_prompt="blurry",
                     seed=7)
    started = provider.submit(sub)
    assert started.state is ProviderState.QUEUED
    endpoint, _, job_id = started.provider_job_id.partition("/")
    assert endpoint == "wan-2-5" and job_id in sandbox.job_ids()

    body = sandbox.submitted[0]
    assert body["input"] == {"prompt": "a red fox in snow", "image": IMAGE, "negative_prompt": "blurry",
                             "size": "832*480", "duration": 5, "seed": 7}
    assert body["webhook"].startswith(receiver.url + "&")
    assert f"token={webhook_token(SECRET, 'att_1')}" in body["webhook"] and "attempt=att_1" in body["webhook"]
    assert 3_500_000 <= body["policy"]["executionTimeout"] <= 3_600_000
    assert body["policy"]["ttl"] == pytest.approx(body["policy"]["executionTimeout"] + RESULT_GRACE_S * 1000,
                                                  abs=1000)

    done = poll_until_ended(provider, started.provider_job_id)
    assert done.state is ProviderState.SUCCEEDED
    assert done.cost_usd == Decimal("0.25")  # wan-2-5 480p 5 s, the price the endpoint states
    assert done.billed.gpu_seconds == pytest.approx(0.3, abs=0.05) and done.render_s == done.billed.gpu_seconds
    assert done.output_url is not None
    video = httpx.get(done.output_url)
    assert video.status_code == 200
    probed = probe(video.content)
    offer = sub.offer
    assert (probed.width, probed.height, probed.fps) == (832, 480, offer.fps.default)
    assert probed.frames == sub.delivered.frames == 120

    wait_for(lambda: len(receiver.hits) >= 1)
    query, hook_body = receiver.hits[0]
    assert verify_webhook(query, hook_body, SECRET) == ("att_1", job_id)
    assert json.loads(hook_body)["status"] == "COMPLETED"


@pytest.mark.parametrize(("offer_id", "size", "mode", "inputs", "expected"), [
    ("runpod/wan-2-1-i2v-720", (1280, 720), "i2v", {"image": IMAGE},
     {"image": IMAGE, "size": "1280*720", "duration": 5}),
    ("runpod/wan-2-2-i2v-720", (720, 1280), "i2v", {"image": IMAGE},
     {"image": IMAGE, "size": "720*1280", "duration": 5}),
    ("runpod/wan-2-5", (1920, 1080), "i2v", {"image": IMAGE}, {"image": IMAGE, "size": "1920*1080", "duration": 5}),
    ("runpod/wan-2-6-t2v", (1280, 720), "t2v", {}, {"size": "1280*720", "duration": 5}),
    ("runpod/wan-2-6-t2v", (1280, 720), "t2v", {"audio": AUDIO}, {"audio": AUDIO, "size": "1280*720", "duration": 5}),
    ("runpod/wan-2-6-i2v", (1280, 720), "i2v", {"image": IMAGE}, {"image": IMAGE, "size": "1280*720", "duration": 5}),
    ("runpod/infinitetalk", (480, 832), "s2v", {"image": IMAGE, "audio": AUDIO},
     {"image": IMAGE, "audio": AUDIO, "size": "480p"}),
])
def test_input_per_endpoint(sandbox: RunPodSandbox, clock: FakeClock, offer_id: str, size: tuple[int, int],
                            mode: str, inputs: dict[str, str], expected: dict[str, Any]) -> None:
    provider = adapter(sandbox)
    status = provider.submit(submission(offer_id, size, mode, inputs))
    assert sandbox.submitted[-1]["input"] == {"prompt": "a red fox in snow", **expected}
    assert "webhook" not in sandbox.submitted[-1] and "policy" not in sandbox.submitted[-1]
    clock.advance(5)
    assert provider.status(status.provider_job_id).state is ProviderState.SUCCEEDED  # the sandbox accepted it


def test_a_ten_second_wan_video_asks_for_ten_seconds(sandbox: RunPodSandbox) -> None:
    sub = submission("runpod/wan-2-2-i2v-720", (1280, 720), duration_s=10)
    assert sub.delivered.frames == 161
    adapter(sandbox).submit(sub)
    assert sandbox.submitted[-1]["input"]["duration"] == 10


@pytest.mark.parametrize(("offer_id", "inputs", "reason"), [
    ("runpod/wan-2-5", {}, "needs an image"),
    ("runpod/infinitetalk", {"image": IMAGE}, "needs an audio"),
    ("runpod/wan22-14b-comfy", {"image": IMAGE}, "not a RunPod public endpoint"),
])
def test_inputs_it_cannot_send_are_rejected_before_any_call(sandbox: RunPodSandbox, offer_id: str,
                                                            inputs: dict[str, str], reason: str) -> None:
    mode = "s2v" if offer_id.endswith("infinitetalk") else "i2v"
    size = (832, 480) if mode == "s2v" else (1280, 720)
    with pytest.raises(Rejected, match=reason):
        adapter(sandbox).submit(submission(offer_id, size, mode, inputs))
    assert sandbox.created == 0


# --- fault matrix -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "error", "jobs_created"), [
    (Fault.RATE_LIMIT, RateLimited, 0),
    (Fault.SERVER_ERROR, OutcomeUnknown, 0),  # a 5xx on submit may hide an accepted job: reconcile, never resend
    (Fault.TIMEOUT, OutcomeUnknown, 0),
    (Fault.ACCEPT_THEN_DROP, OutcomeUnknown, 1),
])
def test_submit_faults(sandbox: RunPodSandbox, fault: Fault, error: type[Exception], jobs_created: int) -> None:
    sandbox.plan.queue("create", fault)
    provider = adapter(sandbox, timeout_s=0.3)
    with pytest.raises(error) as raised:
        provider.submit(submission())
    if isinstance(raised.value, RateLimited):
        assert raised.value.retry_after_s == sandbox.retry_after_s
    assert sandbox.created == jobs_created  # exactly one job for accept-then-drop: the transport never resent
    assert sum(1 for method, path in sandbox.calls if path.endswith("/run")) == 1
    if fault is Fault.ACCEPT_THEN_DROP:
        with pytest.raises(OutcomeUnknown):  # RunPod can't be asked "which job has attempt att_1?"
            provider.lookup("att_1")


@pytest.mark.parametrize(("fault", "error"), [
    (Fault.RATE_LIMIT, RateLimited),
    (Fault.SERVER_ERROR, TransientError),
    (Fault.TIMEOUT, Unavailable),
])
def test_status_faults_are_retryable_and_change_nothing(sandbox: RunPodSandbox, fault: Fault,
                                                        error: type[Exception]) -> None:
    provider = adapter(sandbox, timeout_s=0.3)
    job = provider.submit(submission()).provider_job_id
    sandbox.plan.queue("get", fault)
    with pytest.raises(error) as raised:
        provider.status(job)
    assert isinstance(raised.value, TransientError) and not isinstance(raised.value, OutcomeUnknown)
    assert provider.status(job).state is ProviderState.QUEUED


def test_stuck_in_queue_stays_queued_until_cancelled(sandbox: RunPodSandbox, clock: FakeClock) -> None:
    sandbox.plan.queue("create", Fault.STUCK)
    provider = adapter(sandbox)
    job = provider.submit(submission()).provider_job_id
    for _ in range(3):
        clock.advance(600)
        assert provider.status(job).state is ProviderState.QUEUED
    cancelled = provider.cancel(job)
    assert cancelled.state is ProviderState.CANCELLED
    assert cancelled.billed.as_dict() == {"gpu_seconds": 0.0}  # never ran, nothing billed
    assert provider.health().queue_wait_s == 0.0  # a cancelled job no longer counts as queued


def test_failed_job_carries_the_error_and_what_it_ran(sandbox: RunPodSandbox, clock: FakeClock) -> None:
    sandbox.plan.queue("create", Fault.FAILED)
    provider = adapter(sandbox)
    job = provider.submit(submission()).provider_job_id
    clock.advance(5)
    status = provider.status(job)
    assert status.state is ProviderState.FAILED
    assert status.error and "worker error" in status.error
    assert status.billed.as_dict() == {"gpu_seconds": 0.5} and status.output_url is None


def test_output_url_expired_answers_404(sandbox: RunPodSandbox, clock: FakeClock) -> None:
    sandbox.plan.queue("create", Fault.OUTPUT_EXPIRED)
    provider = adapter(sandbox)
    job = provider.submit(submission()).provider_job_id
    clock.advance(5)
    status = provider.status(job)
    assert status.state is ProviderState.SUCCEEDED and status.output_url is not None
    assert httpx.get(status.output_url).status_code == 404


def test_result_past_retention_reads_as_expired(sandbox: RunPodSandbox, clock: FakeClock) -> None:
    provider = adapter(sandbox)
    job = provider.submit(submission()).provider_job_id
    clock.advance(5)
    assert provider.status(job).state is ProviderState.SUCCEEDED
    clock.advance(sandbox.result_ttl_s)
    status = provider.status(job)
    assert status.state is ProviderState.FAILED and status.error and status.error.startswith("expired")


@pytest.mark.parametrize("fault", [Fault.DUPLICATE_WEBHOOK, Fault.OUT_OF_ORDER_WEBHOOK])
def test_duplicate_and_out_of_order_webhooks_are_only_hints(sandbox: RunPodSandbox, clock: FakeClock,
                                                            receiver: Receiver, fault: Fault) -> None:
    sandbox.plan.queue("create", fault)
    provider = adapter(sandbox)
    job = provider.submit(submission(callback=receiver.url)).provider_job_id
    clock.advance(5)
    wait_for(lambda: len(receiver.hits) == 2)
    hints = [verify_webhook(query, body, SECRET) for query, body in receiver.hits]
    assert hints == [("att_1", job.partition("/")[2])] * 2  # both authentic, both name the same attempt and job
    states = [json.loads(body)["status"] for _, body in receiver.hits]
    assert states == (["COMPLETED", "COMPLETED"] if fault is Fault.DUPLICATE_WEBHOOK else ["COMPLETED", "IN_PROGRESS"])
    assert provider.status(job).state is ProviderState.SUCCEEDED  # what we act on is our own status call


def test_retry_requeues_a_failed_job_under_the_same_id(sandbox: RunPodSandbox, clock: FakeClock) -> None:
    sandbox.plan.queue("create", Fault.FAILED)
    provider = adapter(sandbox)
    job = provider.submit(submission()).provider_job_id
    clock.advance(5)
    endpoint, _, job_id = job.partition("/")
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    retried = httpx.post(f"{sandbox.url}/v2/{endpoint}/retry/{job_id}", headers=headers).json()
    assert retried == {"id": job_id, "status": "IN_QUEUE"}
    clock.advance(5)
    assert provider.status(job).state is ProviderState.SUCCEEDED


# --- cancel, health, auth -----------------------------------------------------------------------------------


def test_cancel_while_running_bills_what_ran(sandbox: RunPodSandbox, clock: FakeClock) -> None:
    sandbox.execution_s = 10
    provider = adapter(sandbox)
    job = provider.submit(submission()).provider_job_id
    clock.advance(0.2 + 4)
    assert provider.status(job).state is ProviderState.RUNNING
    status = provider.cancel(job)
    assert status.state is ProviderState.CANCELLED
    assert status.billed.gpu_seconds == pytest.approx(4.0)
    clock.advance(60)
    assert provider.status(job).state is ProviderState.CANCELLED  # it stays cancelled, it doesn't complete


def test_health_reports_the_queue_and_goes_down_on_auth_failure(sandbox: RunPodSandbox) -> None:
    provider = adapter(sandbox, health_endpoints=["wan-2-5"], health_ttl_s=0, typical_job_s=60)
    assert provider.health().up and provider.health().queue_wait_s == 0.0
    for _ in range(4):
        provider.submit(submission())
    health = provider.health()
    assert health.up and health.name == "runpod"
    assert health.queue_wait_s == pytest.approx(4 * 60 / sandbox.workers)
    assert "queue 4" in health.detail
    assert not adapter(sandbox, key="wrong", health_endpoints=["wan-2-5"]).health().up


def test_health_says_per_endpoint_whether_a_worker_is_warm(sandbox: RunPodSandbox, clock: FakeClock) -> None:
    sandbox.idle_timeout_s = 5.0  # workers scale to zero; one stays up 5 s after its job
    provider = adapter(sandbox, health_endpoints=["wan-2-5", "wan-2-6-t2v"], health_ttl_s=0, typical_job_s=60)
    cold = provider.health()
    assert cold.up and set(cold.endpoints) == {"wan-2-5", "wan-2-6-t2v"}
    assert not cold.endpoints["wan-2-5"].warm and cold.endpoints["wan-2-5"].up
    job = provider.submit(submission()).provider_job_id
    clock.advance(0.2 + 0.5 + 0.1)
    assert provider.status(job).state is ProviderState.SUCCEEDED
    warm = provider.health().endpoints
    assert warm["wan-2-5"].warm and not warm["wan-2-6-t2v"].warm  # one endpoint's worker warms no other
    provider.submit(submission(attempt="att_2"))
    provider.submit(submission(attempt="att_3"))
    assert not provider.health().endpoints["wan-2-5"].warm, "the one idle worker is spoken for by the queue"
    clock.advance(0.2 + 0.5 + 0.1)
    assert provider.health().endpoints["wan-2-5"].warm  # the later jobs are done and their workers idle
    clock.advance(60)
    assert not provider.health().endpoints["wan-2-5"].warm, "scaled back to zero after the idle timeout"


def test_health_survives_one_missing_endpoint(sandbox: RunPodSandbox) -> None:
    provider = adapter(sandbox, health_endpoints=["no-such-endpoint", "wan-2-5"], health_ttl_s=0)
    health = provider.health()
    assert health.up and health.endpoints["wan-2-5"].up and not health.endpoints["no-such-endpoint"].up
    assert not adapter(sandbox, health_endpoints=["no-such-endpoint"]).health().up


def test_wrong_key_is_auth_failed_and_creates_nothing(sandbox: RunPodSandbox) -> None:
    with pytest.raises(AuthFailed):
        adapter(sandbox, key="wrong").submit(submission())
    assert sandbox.created == 0


# --- webhook tokens ---------------------------------------------------------------------------------------


def _hook_query(token: str | None, attempt: str | None = "att_1") -> str:
    parts = ["tenant=t1", "job=job_1"]
    if token is not None:
        parts.append(f"token={token}")
    if attempt is not None:
        parts.append(f"attempt={attempt}")
    return "&".join(parts)


BODY = json.dumps({"id": "abc-u1", "status": "COMPLETED"}).encode()


def test_webhook_token_good() -> None:
    assert verify_webhook(_hook_query(webhook_token(SECRET, "att_1")), BODY, SECRET) == ("att_1", "abc-u1")
    # While a secret is rotated out, either one is accepted.
    assert verify_webhook(_hook_query(webhook_token(SECRET, "att_1")), BODY, ["new-secret", SECRET])[0] == "att_1"


@pytest.mark.parametrize(("query", "status"), [
    (_hook_query(None), 401),  # missing token
    (_hook_query(""), 401),  # empty token
    (_hook_query("0" * 64), 401),  # forged
    (_hook_query(webhook_token("another-secret", "att_1")), 401),  # signed with someone else's secret
    (_hook_query(webhook_token(SECRET, "att_2")), 401),  # another attempt's token
    (_hook_query(webhook_token(SECRET, "att_1"), attempt=None), 400),  # no attempt
    (_hook_query(webhook_token(SECRET, "att_1")) + "&attempt=att_2", 400),  # two attempts: which one is signed?
])
def test_webhook_token_refused(query: str, status: int) -> None:
    with pytest.raises(WebhookRefused) as refused:
        verify_webhook(query, BODY, SECRET)
    assert refused.value.status == status


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"status": "COMPLETED"}'])
def test_webhook_body_without_a_job_is_refused(body: bytes) -> None:
    with pytest.raises(WebhookRefused) as refused:
        verify_webhook(_hook_query(webhook_token(SECRET, "att_1")), body, SECRET)
    assert refused.value.status == 400


# --- policy (deadline → executionTimeout / ttl) ---------------------------------------------------------


def test_policy_is_derived_from_the_deadline_and_clamped() -> None:
    now = utcnow()
    assert policy_for(now + timedelta(minutes=20), now) == {"executionTimeout": 1_200_000,
                                                           "ttl": 1_200_000 + RESULT_GRACE_S * 1000}
    assert policy_for(now + timedelta(seconds=1), now)["executionTimeout"] == 5_000  # RunPod's floor
    week_ms = 7 * 24 * 3600 * 1000
    assert policy_for(now + timedelta(days=30), now) == {"executionTimeout": week_ms, "ttl": week_ms}
    with pytest.raises(Rejected, match="already passed"):
        policy_for(now - timedelta(seconds=1), now)


def test_execution_timeout_ends_the_job_failed(sandbox: RunPodSandbox, clock: FakeClock) -> None:
    sandbox.execution_s = 30
    provider = adapter(sandbox)
    sub = submission(deadline=utcnow() + timedelta(seconds=10))
    job = provider.submit(sub).provider_job_id
    assert sandbox.submitted[-1]["policy"]["executionTimeout"] <= 10_000
    clock.advance(0.2 + 10.5)
    status = provider.status(job)
    assert status.state is ProviderState.FAILED and status.error and status.error.startswith("timed_out")
    assert (sandbox.job_state(job.partition("/")[2]) or {}).get("status") == "TIMED_OUT"
    assert status.billed.gpu_seconds <= 10.0


def test_ttl_expiry_deletes_the_job_and_reads_as_expired(sandbox: RunPodSandbox, clock: FakeClock) -> None:
    sandbox.plan.queue("create", Fault.STUCK)
    provider = adapter(sandbox)
    sub = submission(deadline=utcnow() + timedelta(seconds=30))
    job = provider.submit(sub).provider_job_id
    clock.advance(30 + RESULT_GRACE_S + 1)
    status = provider.status(job)
    assert status.state is ProviderState.FAILED and status.error and "expired" in status.error


def test_sandbox_refuses_a_policy_outside_runpods_bounds(sandbox: RunPodSandbox) -> None:
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    answer = httpx.post(f"{sandbox.url}/v2/wan-2-5/run", headers=headers,
                        json={"input": {"prompt": "x"}, "policy": {"executionTimeout": 1000}})
    assert answer.status_code == 400 and sandbox.created == 0
