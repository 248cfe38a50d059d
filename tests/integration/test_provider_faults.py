"""The fault matrix through the real worker: each provider fault → its declared retry, fallback or terminal state,
and never two paid submissions for one attempt. Providers are the sandboxes, spoken to by the real adapters."""

from datetime import timedelta
from decimal import Decimal

import pytest

from hvr.sandbox.base import Fault
from router.models.common import ProviderKind
from router.models.job import AttemptStatus, JobStatus
from router.models.request import VideoRequest
from router.providers.base import ProviderState, ProviderStatus
from router.services import lifecycle
from router.services.submit import accept

RUNPOD_720 = {"mode": "t2v", "prompt": "waves on black sand", "resolution": "720p", "duration_s": 5,
              "quality": "premium", "providers": ["runpod"], "deadline_s": 3600}
REPLICATE_480 = {"mode": "t2v", "prompt": "a paper plane", "resolution": "480p", "duration_s": 5,
                 "quality": "standard", "providers": ["replicate"], "deadline_s": 3600}
VEO_720 = {"mode": "t2v", "prompt": "a perfume bottle", "resolution": "720p", "duration_s": 8,
           "quality": "premium", "providers": ["veo"], "deadline_s": 3600}


def run(stack, deps, body: dict, timeout_s: float = 60):
    job = accept(VideoRequest.parse_at_edge(body), "faults", deps)
    assert stack.drain(lambda: deps.jobs.get("faults", job.id).status.terminal, timeout_s=timeout_s)
    return deps.jobs.get("faults", job.id)


def sandbox(stack, name: str):
    return stack.sandboxes.servers[name]


def test_rate_limited_create_is_retried_and_submits_once(stack, deps) -> None:
    runpod = sandbox(stack, "runpod")
    before = runpod.created
    runpod.plan.queue("create", Fault.RATE_LIMIT)
    job = run(stack, deps, RUNPOD_720)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert runpod.created - before == 1 and len(job.attempts) == 1


def test_an_accepted_but_unanswered_create_is_adopted_from_its_webhook_not_resubmitted(stack, deps) -> None:
    runpod = sandbox(stack, "runpod")
    before = runpod.created
    runpod.plan.queue("create", Fault.ACCEPT_THEN_DROP)
    job = run(stack, deps, RUNPOD_720)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert runpod.created - before == 1, "the dropped answer must not lead to a second paid job"
    assert len(job.attempts) == 1 and job.attempts[0].provider_job_id


def test_a_failed_prediction_bills_its_time_and_is_retried_on_the_same_offer(stack, deps) -> None:
    replicate = sandbox(stack, "replicate")
    replicate.plan.queue("run", Fault.FAILED)
    job = run(stack, deps, REPLICATE_480)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert [a.status for a in job.attempts] == [AttemptStatus.FAILED, AttemptStatus.SUCCEEDED]
    assert job.attempts[0].offer == job.attempts[1].offer, "one crashed render is bad luck, not a verdict"
    rows = {row.attempt_id: row for row in deps.ledger.for_job("faults", job.id)}
    assert len(rows) == 2 and rows[job.attempts[0].id].outcome == "failed"


def test_an_offer_that_fails_twice_is_left_for_the_next_best(stack, deps) -> None:
    replicate = sandbox(stack, "replicate")
    replicate.plan.queue("run", Fault.FAILED)
    replicate.plan.queue("run", Fault.FAILED)
    job = run(stack, deps, REPLICATE_480)
    assert job.status is JobStatus.SUCCEEDED, job.error
    first, second, third = job.attempts
    assert first.offer == second.offer != third.offer
    assert third.status is AttemptStatus.SUCCEEDED
    assert all(row.outcome == "failed" for row in deps.ledger.for_job("faults", job.id) if row.attempt_id != third.id)


@pytest.mark.parametrize(("provider", "call", "body"), [("runpod", "create", RUNPOD_720),
                                                        ("replicate", "run", REPLICATE_480)])
def test_a_job_its_provider_never_starts_is_cancelled_there_and_falls_back(stack, deps, provider: str, call: str,
                                                                           body: dict) -> None:
    # Before, a job stuck in a provider's queue waited there until its deadline (the storm soak's lost job).
    sandbox(stack, provider).plan.queue(call, Fault.STUCK)
    job = run(stack, deps, body)
    assert job.status is JobStatus.SUCCEEDED, job.error
    stalled, delivered = job.attempts
    assert stalled.status is AttemptStatus.FAILED and stalled.reason.code == "queue_stalled", stalled.reason
    assert "cancelled there" in str(stalled.reason) and stalled.offer != delivered.offer
    status = deps.providers[ProviderKind(provider)].status(stalled.provider_job_id)
    assert status.state is ProviderState.CANCELLED, "the fallback runs only once the stuck job is cancelled"
    rows = {row.attempt_id: row for row in deps.ledger.for_job("faults", job.id)}
    assert rows[stalled.id].outcome == "abandoned" and rows[stalled.id].actual_usd == 0


def test_a_render_that_runs_far_past_its_time_is_given_up_and_falls_back(stack, deps) -> None:
    # Before, a Veo operation that never finished held its job until the deadline, a day away (the storm soak's lost
    # job at 60 jobs). Veo can't cancel: the attempt is left billed at nothing, as the operation never delivers.
    veo = sandbox(stack, "veo")
    before = len(veo.operations)
    veo.plan.queue("create", Fault.STUCK)
    job = accept(VideoRequest.parse_at_edge(VEO_720), "faults", deps)
    assert stack.drain(lambda: any(a.provider_job_id for a in deps.jobs.get("faults", job.id).attempts), timeout_s=30)

    def submitted_an_hour_ago(draft):
        # An hour passing, without the test waiting out the stall rule's real-time floor.
        draft.attempts[0].started_at -= timedelta(hours=1)
        return draft.status

    lifecycle.update(deps, "faults", job.id, submitted_an_hour_ago)
    assert stack.drain(lambda: deps.jobs.get("faults", job.id).status.terminal, timeout_s=60)
    job = deps.jobs.get("faults", job.id)
    assert job.status is JobStatus.SUCCEEDED, job.error
    stalled, delivered = job.attempts
    assert stalled.status is AttemptStatus.FAILED and stalled.reason.code == "render_stalled", stalled.reason
    assert "can't be cancelled" in str(stalled.reason) and stalled.offer != delivered.offer
    assert len(veo.operations) - before == 2
    rows = {row.attempt_id: row for row in deps.ledger.for_job("faults", job.id)}
    assert rows[stalled.id].outcome == "abandoned" and rows[stalled.id].actual_usd == 0


def test_content_filtered_is_not_billed_and_not_retried_on_another_veo_model(stack, deps) -> None:
    sandbox(stack, "veo").plan.queue("create", Fault.CONTENT_FILTER)
    job = run(stack, deps, VEO_720)
    assert job.status is JobStatus.FAILED and job.error is not None and job.error.code == "content_filtered"
    assert len(job.attempts) == 1
    [row] = deps.ledger.for_job("faults", job.id)
    assert row.outcome == "content_filtered" and row.actual_usd == Decimal("0")


def test_an_expired_output_fails_the_attempt_with_the_reason(stack, deps) -> None:
    sandbox(stack, "replicate").plan.queue("download", Fault.OUTPUT_EXPIRED)
    job = run(stack, deps, REPLICATE_480)
    assert job.attempts[0].status is AttemptStatus.FAILED
    assert str(job.attempts[0].reason or "").startswith("output_rejected: HTTP 404")


def test_duplicate_webhooks_make_one_ledger_row(stack, deps) -> None:
    sandbox(stack, "replicate").plan.queue("webhook", Fault.DUPLICATE_WEBHOOK)
    job = run(stack, deps, REPLICATE_480)
    assert job.status is JobStatus.SUCCEEDED
    assert len(deps.ledger.for_job("faults", job.id)) == 1


@pytest.mark.parametrize("name, body", [("replicate", REPLICATE_480), ("runpod", RUNPOD_720)])
def test_a_completion_webhook_delayed_past_the_poll_changes_nothing(stack, deps, name: str, body: dict) -> None:
    provider = sandbox(stack, name)
    provider.plan.webhook_delay_s = 6.0
    provider.plan.queue("webhook", Fault.DELAYED_WEBHOOK)
    delivered_before = len(provider.webhooks)
    job = run(stack, deps, body)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert len(provider.webhooks) == delivered_before, "the poll should have ended the job before the webhook came"
    assert stack.drain(lambda: len(provider.webhooks) > delivered_before, timeout_s=15)
    stack.drain(lambda: False, timeout_s=0.5)  # whatever the late webhook set off has run
    # Taken at once: RunPod sends a delivery answered with anything but 200 twice more, 10 s apart.
    assert [delivery.status for delivery in provider.webhooks[delivered_before:]] == [200]
    after = deps.jobs.get("faults", job.id)
    assert after.model_dump() == job.model_dump(), "a late webhook for an ended job is a no-op"
    assert len(deps.ledger.for_job("faults", job.id)) == 1


class _EvilOutput:
    """A provider whose success names an output URL on a private address (a forged webhook's favourite)."""

    def __init__(self, inner, url: str) -> None:
        self.inner, self.url = inner, url

    def status(self, provider_job_id: str) -> ProviderStatus:
        real = self.inner.status(provider_job_id)
        if real.state is ProviderState.SUCCEEDED:
            return ProviderStatus(real.provider_job_id, real.state, 1.0, real.billed, output_url=self.url)
        return real

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "https://10.0.0.5/video.mp4",
                                 "https://evil.example/video.mp4"])
def test_an_output_url_outside_the_rules_fails_the_attempt(stack, deps, url: str) -> None:
    deps.providers[ProviderKind.REPLICATE] = _EvilOutput(deps.providers[ProviderKind.REPLICATE], url)
    job = run(stack, deps, {**REPLICATE_480, "max_cost_usd": "0.20"})
    assert all(str(a.reason or "").startswith("output_rejected") for a in job.attempts)
    assert job.status is JobStatus.FAILED and job.output is None


class _ClientInputHost:
    """The client's input host, seen from the worker: `inputs.example.com` resolves to a public address whose
    connections are refused, `sneaky.example.com` to loopback. Everything else (moto, the sandboxes) is untouched."""

    TABLE = {"inputs.example.com": "34.1.2.3", "sneaky.example.com": "127.0.0.1"}

    def __init__(self, monkeypatch) -> None:
        import socket

        import httpx

        self.connects: list[str] = []
        real_resolve, real_send = socket.getaddrinfo, httpx.HTTPTransport.handle_request

        def resolve(host, port, *args, **kwargs):
            if host in self.TABLE:
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (self.TABLE[host], port))]
            return real_resolve(host, port, *args, **kwargs)

        def send(transport, request):
            if request.url.host in self.TABLE.values() and request.url.port in (None, 443):
                self.connects.append(request.headers["host"])
                raise httpx.ConnectError("connection refused", request=request)
            return real_send(transport, request)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        monkeypatch.setattr(httpx.HTTPTransport, "handle_request", send)


def comfy_i2v(image: str) -> dict:
    return {"mode": "i2v", "prompt": "a fox turns its head", "image": image, "model": "runpod/wan21-14b-comfy",
            "resolution": "832x480", "duration_s": 2, "deadline_s": 3600}


def test_an_input_that_keeps_failing_ends_after_bounded_tries_and_leaves_the_circuit_closed(
        stack, deps, monkeypatch) -> None:
    from router.models.common import Circuit
    from router.services import circuits

    host = _ClientInputHost(monkeypatch)
    target = deps.providers[ProviderKind.RUNPOD].target_name
    circuits.succeeded(deps, target)  # start from no failures: six would open it (threshold 5)
    monkeypatch.setattr(deps, "max_submit_tries", 6)
    runpod = sandbox(stack, "runpod")
    before = runpod.created

    job = run(stack, deps, comfy_i2v("https://inputs.example.com/in.png"))

    assert job.status is JobStatus.FAILED and job.error is not None and job.error.code == "input_unavailable"
    [attempt] = job.attempts  # the pinned offer's route to the input failed: no second try of it
    assert str(attempt.reason or "").startswith("input_unavailable: gave up after 6 submit tries: input image")
    assert host.connects == ["inputs.example.com"] * 6 and runpod.created == before
    assert deps.circuits.states(deps.clock()).get(target, Circuit.CLOSED) is Circuit.CLOSED


def test_an_input_resolving_to_loopback_ends_the_attempt_at_once(stack, deps, monkeypatch) -> None:
    host = _ClientInputHost(monkeypatch)
    job = run(stack, deps, comfy_i2v("https://sneaky.example.com/in.png"))
    assert job.status is JobStatus.FAILED and job.error is not None and job.error.code == "input_rejected"
    [attempt] = job.attempts
    assert "non-public address 127.0.0.1" in str(attempt.reason or "") and attempt.submit_tries == 0
    assert host.connects == []
