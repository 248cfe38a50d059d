"""The jobs-queue use cases: route, poll and finalize one job. Every step is safe to run twice.

Submission follows the intent-record protocol (ARCHITECTURE §5, reliability §2.3): the attempt is written
`submitting` before the provider call and `submitted` after it. A redelivered `route` that finds an attempt
still `submitting` asks the provider about that attempt id first and submits only on a provable "not found".
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from router.backoff import backoff
from router.models.common import ProviderKind
from router.models.common import money as to_money
from router.models.decision import Decision
from router.models.job import Attempt, AttemptStatus, Job, JobError, JobOutput, JobStatus
from router.models.ledger import LedgerEntry
from router.models.offer import Offer
from router.policy.engine import route
from router.policy.fallback import excluded_offers
from router.policy.plan import follow_plan, planned_offer
from router.providers.base import ProviderState, ProviderStatus, Submission
from router.providers.download import OUTPUT_HOSTS, UnsafeDownload, fetch_to_s3, store_bytes
from router.providers.errors import OutcomeUnknown, ProviderError, RateLimited, Unavailable
from router.services import callbacks, circuits, lifecycle, money
from router.services.context import routing_context
from router.services.deps import Deps
from router.store.artifacts import output_key, s3_uri
from router.store.budgets import BudgetRefused
from router.store.errors import NotFound
from router.store.messages import MessageKind, WorkerMessage

if TYPE_CHECKING:
    from router.media.probe import ProbeResult

logger = logging.getLogger(__name__)
POLL_BASE_S = 5.0
INPUT_URL_TTL_S = 6 * 3600  # long enough for a queued provider to fetch its inputs
SUBMIT_UNKNOWN_AFTER_S = 600.0  # how long to wait for a webhook naming a job whose submit answer was lost
# Providers answer in real time even when the embedded stack's clock is scaled: never wait less than this.
SUBMIT_UNKNOWN_FLOOR_S = 5.0
MIN_POLL_DELAY_S = 1.0
# A running job is rewritten at least this often even without progress, so the sweeper can tell a live poll
# chain (recent `updated_at`) from a lost one.
HEARTBEAT_S = 600.0


def handle(message: WorkerMessage, deps: Deps, receive_count: int = 1) -> None:
    try:
        job = deps.jobs.get(message.tenant, message.job_id)
    except NotFound:
        logger.warning("message for unknown job %s/%s dropped", message.tenant, message.job_id)
        return  # nothing to act on, and retrying can't make the job appear
    if message.kind is MessageKind.CALLBACK:
        callbacks.deliver(job, message, deps)
        return
    if job.status.terminal:
        return
    now = deps.clock()
    if job.deadline is not None and now > job.deadline:
        _expire(job, deps, now)
        return
    if message.kind is MessageKind.ROUTE:
        _on_route(job, deps, redelivered=receive_count > 1)
    elif message.kind is MessageKind.POLL:
        _on_poll(job, message, deps)
    else:
        _on_finalize(job, message, deps)


# --- route -------------------------------------------------------------------------------------------------


def _on_route(job: Job, deps: Deps, redelivered: bool) -> None:
    attempt = job.current_attempt
    if job.status in (JobStatus.SUBMITTED, JobStatus.RUNNING):
        # The first delivery got this far; if it died before queueing its poll, this copy restarts the chain.
        if redelivered and attempt is not None:
            _schedule_poll(job, attempt, deps, poll_n=0)
        return
    if attempt is not None and attempt.status is AttemptStatus.SUBMITTING:
        _reconcile(job, attempt, deps)
        return
    _route_next(job, deps)


def _route_next(job: Job, deps: Deps) -> None:
    """Decide (again) and start a new attempt, or end the job if nothing feasible is left."""
    now = deps.clock()
    tried = excluded_offers(((a.offer, a.provider, a.reason) for a in job.attempts if a.status is AttemptStatus.FAILED),
                            deps.catalog.offers)
    if len(job.attempts) >= deps.max_attempts:
        _fail(job, deps, _failure_code(job), f"gave up after {len(job.attempts)} attempts", _last_reason(job))
        return
    decision, refused = _decide_and_reserve(job, deps, tried, now)
    chosen = decision.chosen
    if chosen is None and refused is not None:
        _end(job, deps, JobStatus.FAILED if job.attempts else JobStatus.REJECTED, "budget_exhausted",
             f"budget {refused.scope} can't cover any feasible offer: {refused}", details=decision.reasons,
             decision=decision)
        return
    if chosen is None:
        if job.attempts:
            _fail(job, deps, _failure_code(job), _last_reason(job) or "attempt failed",
                  "no fallback left: " + "; ".join(decision.reasons)[:900])
        else:
            _end(job, deps, JobStatus.REJECTED, "no_feasible_offer",
                 "no offer can meet this request", details=decision.reasons, decision=decision)
        return
    offer = _offer(deps, chosen.offer)
    attempt = Attempt(
        n=len(job.attempts) + 1,
        id=_attempt_id(job),
        offer=offer.id,
        provider=offer.provider,
        target=chosen.target,
        started_at=now,
        delivered=chosen.delivered,
        estimated_cost_usd=chosen.estimated_cost_usd,
        estimated_render_s=round(offer.latency.compute_seconds(
            chosen.delivered.width, chosen.delivered.height, chosen.delivered.frames, p90=False), 3),
    )

    def add_intent(draft: Job) -> JobStatus | None:
        if draft.current_attempt is not None and not draft.current_attempt.status.ended:
            return None  # someone else started an attempt meanwhile
        draft.routing = decision
        draft.attempts.append(attempt)
        draft.cost.estimated_usd = chosen.estimated_cost_usd
        return JobStatus.ROUTED

    job = lifecycle.update(deps, job.tenant, job.id, add_intent)
    if job.current_attempt is None or job.current_attempt.id != attempt.id:
        return
    _submit(job, attempt, offer, deps)


def _attempt_id(job: Job) -> str:
    return f"att_{job.id.removeprefix('job_')}_{len(job.attempts) + 1}"


def _decide_and_reserve(job: Job, deps: Deps, tried: frozenset[str], now: datetime,
                        tries: int = 3) -> tuple[Decision, BudgetRefused | None]:
    """Route, then hold the chosen offer's p90 estimate in the job's budgets. A refusal (another job took the
    money since the context was read) routes again with fresh budgets, so a cheaper offer can still fit."""
    refused: BudgetRefused | None = None
    for _ in range(tries):
        context = routing_context(deps, tried, tenant=job.tenant, campaign_id=job.request.campaign_id)
        decision = route(job.request, deps.catalog.offers, context, now, job.deadline)
        # A campaign job carries its planned offer: kept while the engine still finds it feasible.
        decision = follow_plan(decision, planned_offer(job), context)
        chosen = decision.chosen
        if chosen is None:
            refused = refused or _budget_blocked(decision)
            return decision, refused
        try:
            money.reserve(deps, job.tenant, job.request.campaign_id, job.id, _attempt_id(job),
                          chosen.estimated_cost_p90_usd, now)
        except BudgetRefused as exc:
            refused = exc
            continue
        return decision, None
    return Decision(chosen=None, fallbacks=[], candidates=decision.candidates, reasons=[str(refused)],
                    decided_at=now), refused


def _budget_blocked(decision: Decision) -> BudgetRefused | None:
    """When budgets are the only thing in the way, name the scope (the job ends `budget_exhausted`)."""
    blocked = [c for c in decision.candidates if c.reasons and all(r.startswith("budget:") for r in c.reasons)]
    if not blocked:
        return None
    reason = blocked[0].reasons[0]
    scope = reason.split(" over ", 1)[1].split("'s remaining", 1)[0]
    return BudgetRefused(scope, Decimal(0), blocked[0].estimated_cost_p90_usd or Decimal(0))


def _submit(job: Job, attempt: Attempt, offer: Offer, deps: Deps) -> None:
    provider = deps.providers[offer.provider]
    pushes = offer.provider is ProviderKind.LOCAL  # the agent PUTs its output; cloud outputs are fetched by us
    submission = Submission(
        attempt_id=attempt.id,
        job_id=job.id,
        tenant=job.tenant,
        offer=offer,
        request=job.request,
        delivered=attempt.delivered,
        output_put_url=deps.artifacts.presign_put(output_key(job.tenant, job.id, attempt.id)) if pushes else None,
        callback_url=callbacks.provider_callback_url(deps, offer.provider, job),
        inputs=_input_urls(job, deps),
        deadline=job.deadline,
    )
    try:
        status = circuits.watch(deps, attempt.target, lambda: provider.submit(submission))
    except (RateLimited, Unavailable) as exc:
        # Refused or never sent: no provider job exists, so the same attempt may simply be submitted again later.
        _retry_submit_later(job, attempt, deps, exc, sent=False)
        return
    except OutcomeUnknown as exc:
        # The provider may have created the job: only a reconcile may decide, never a blind resubmit.
        _retry_submit_later(job, attempt, deps, exc, sent=True)
        return
    except ProviderError as exc:
        if exc.retryable:
            raise
        _attempt_failed(job, attempt.id, deps, f"rejected: {exc}", billed={})
        return
    _mark_submitted(job, attempt.id, status, deps)


def _retry_submit_later(job: Job, attempt: Attempt, deps: Deps, exc: ProviderError, sent: bool) -> None:
    """Record whether the failed submit can have reached the provider, then come back with a delayed `route`
    (the queue-level backoff; raising instead would burn the message's receive count towards the DLQ)."""
    def change(draft: Job) -> JobStatus | None:
        current = _attempt(draft, attempt.id)
        if current is None or current.status is not AttemptStatus.SUBMITTING:
            return None
        current.submit_tries += 1
        current.unsent = not sent
        current.reason = f"submit retry {current.submit_tries}: {exc}"[:300]
        return draft.status

    job = lifecycle.update(deps, job.tenant, job.id, change)
    current = _attempt(job, attempt.id)
    tries = current.submit_tries if current else 1
    wait = exc.retry_after_s if isinstance(exc, RateLimited) and exc.retry_after_s else backoff(tries, POLL_BASE_S)
    deps.queue.send(WorkerMessage(kind=MessageKind.ROUTE, tenant=job.tenant, job_id=job.id, poll_n=tries),
                    delay_s=max(MIN_POLL_DELAY_S, wait / deps.time_scale))


def _input_urls(job: Job, deps: Deps) -> dict[str, str]:
    """Inputs as URLs a provider can GET: our uploads presigned, client https URLs as given."""
    urls = {}
    for field in ("image", "audio", "mask"):
        ref = getattr(job.request, field)
        if ref and ref.startswith(f"s3://{deps.artifacts.bucket}/"):
            urls[field] = deps.artifacts.presign_get(ref.split("/", 3)[3], expires_s=INPUT_URL_TTL_S)
        elif ref:
            urls[field] = ref
    return urls


def _reconcile(job: Job, attempt: Attempt, deps: Deps) -> None:
    offer = _offer(deps, attempt.offer)
    if attempt.unsent:
        _submit(job, attempt, offer, deps)  # the last try provably created nothing
        return
    try:
        found = deps.providers[offer.provider].lookup(attempt.id)
    except OutcomeUnknown as exc:
        # The provider can't be asked about our attempt (no lookup by our id). Wait for its webhook, which
        # carries the attempt; past the window, end the attempt as unknown rather than ever paying twice.
        waited = (deps.clock() - attempt.started_at).total_seconds()
        if waited < max(SUBMIT_UNKNOWN_FLOOR_S, SUBMIT_UNKNOWN_AFTER_S / deps.time_scale):
            deps.queue.send(WorkerMessage(kind=MessageKind.ROUTE, tenant=job.tenant, job_id=job.id),
                            delay_s=max(MIN_POLL_DELAY_S, backoff(attempt.submit_tries, POLL_BASE_S) / deps.time_scale))
            return
        _attempt_failed(job, attempt.id, deps, f"submit_unknown: the provider never confirmed the job ({exc})",
                        billed={})
        return
    if found is None:
        _submit(job, attempt, offer, deps)  # provably never reached the provider
    else:
        _mark_submitted(job, attempt.id, found, deps)


def _mark_submitted(job: Job, attempt_id: str, status: ProviderStatus, deps: Deps, schedule: bool = True) -> Job:
    def change(draft: Job) -> JobStatus | None:
        attempt = _attempt(draft, attempt_id)
        if attempt is None or attempt.status is not AttemptStatus.SUBMITTING:
            return None
        attempt.status = AttemptStatus.SUBMITTED
        attempt.provider_job_id = status.provider_job_id
        attempt.reason, attempt.unsent = None, False  # earlier submit retries are history now
        return JobStatus.SUBMITTED

    job = lifecycle.update(deps, job.tenant, job.id, change)
    attempt = _attempt(job, attempt_id)
    if schedule and attempt is not None and job.status is JobStatus.SUBMITTED:
        _schedule_poll(job, attempt, deps, poll_n=0)
    return job


# --- poll --------------------------------------------------------------------------------------------------


def _on_poll(job: Job, message: WorkerMessage, deps: Deps) -> None:
    attempt = job.current_attempt
    if attempt is None or attempt.id != message.attempt_id or attempt.status.ended:
        return  # a poll for an attempt that has since ended or been replaced
    if attempt.provider_job_id is None:
        if attempt.status is AttemptStatus.SUBMITTING and message.provider_job_id:
            # A webhook named the provider's job for an attempt whose submit answer was lost: adopt it.
            job = _mark_submitted(job, attempt.id, ProviderStatus(message.provider_job_id, ProviderState.QUEUED),
                                  deps, schedule=False)
            attempt = _attempt(job, attempt.id) or attempt
        if attempt.provider_job_id is None:
            return
    provider = deps.providers[attempt.provider]
    status = circuits.watch(deps, attempt.target, lambda: provider.status(attempt.provider_job_id or ""))
    if status.state is ProviderState.SUCCEEDED:
        deps.queue.send(WorkerMessage(kind=MessageKind.FINALIZE, tenant=job.tenant, job_id=job.id,
                                      attempt_id=attempt.id))
    elif status.state in (ProviderState.FAILED, ProviderState.CANCELLED):
        if status.content_filtered:
            _attempt_failed(job, attempt.id, deps, f"content_filtered: {status.error or 'the safety filter'}",
                            billed={})
            return
        circuits.failed(deps, attempt.target)
        _attempt_failed(job, attempt.id, deps, status.error or f"provider reported {status.state.value}",
                        billed=status.billed, provider_cost=status.cost_usd)
    else:
        _record_progress(job, attempt.id, status, deps)
        _schedule_poll(job, attempt, deps, poll_n=message.poll_n + 1)


def _record_progress(job: Job, attempt_id: str, status: ProviderStatus, deps: Deps) -> None:
    running = status.state is ProviderState.RUNNING

    def change(draft: Job) -> JobStatus | None:
        attempt = _attempt(draft, attempt_id)
        if attempt is None or attempt.status.ended:
            return None
        moved = running and attempt.status is not AttemptStatus.RUNNING
        quiet_s = (deps.clock() - draft.updated_at).total_seconds() * deps.time_scale
        if not moved and status.progress - draft.progress < 0.05 and quiet_s < HEARTBEAT_S:
            return None  # not worth a write
        if running:
            attempt.status = AttemptStatus.RUNNING
        draft.progress = round(max(draft.progress, status.progress), 3)
        return JobStatus.RUNNING if running else draft.status

    lifecycle.update(deps, job.tenant, job.id, change)


def _schedule_poll(job: Job, attempt: Attempt, deps: Deps, poll_n: int) -> None:
    delay = max(MIN_POLL_DELAY_S, backoff(poll_n, POLL_BASE_S) / deps.time_scale)
    deps.queue.send(
        WorkerMessage(kind=MessageKind.POLL, tenant=job.tenant, job_id=job.id, attempt_id=attempt.id,
                      poll_n=poll_n),
        delay_s=delay,
    )


# --- finalize ----------------------------------------------------------------------------------------------


def _on_finalize(job: Job, message: WorkerMessage, deps: Deps) -> None:
    attempt = job.current_attempt
    if attempt is None or attempt.id != message.attempt_id or attempt.status.ended:
        return
    status = deps.providers[attempt.provider].status(attempt.provider_job_id or attempt.id)
    if status.state is not ProviderState.SUCCEEDED:
        raise RuntimeError(f"finalize for {attempt.id} while the provider says {status.state.value}")
    key = output_key(job.tenant, job.id, attempt.id)
    try:
        size = _collect_output(attempt, status, key, deps)
    except UnsafeDownload as exc:
        _attempt_failed(job, attempt.id, deps, f"output_rejected: {exc}", billed=status.billed,
                        provider_cost=status.cost_usd)
        return
    if size is None:
        _attempt_failed(job, attempt.id, deps, "output_missing: the provider reported success but no file arrived",
                        billed=status.billed, provider_cost=status.cost_usd)
        return
    problem, probed = _check_output(deps, key, attempt)
    if problem:
        _attempt_failed(job, attempt.id, deps, problem, billed=status.billed, provider_cost=status.cost_usd)
        return
    assert probed is not None
    circuits.succeeded(deps, attempt.target)
    uri = s3_uri(deps.artifacts.bucket, key)
    actual = record_ledger(job, attempt, deps, "succeeded", status.billed, uri, provider_cost=status.cost_usd)
    _learn(attempt, status.billed, deps)
    output = JobOutput(s3_uri=uri, bytes=size, width=probed.width, height=probed.height, frames=probed.frames,
                       fps=probed.fps, duration_s=round(probed.duration_s, 3))

    def succeed(draft: Job) -> JobStatus | None:
        current = _attempt(draft, attempt.id)
        if current is None or current.status.ended:
            return None
        close_attempt(current, deps.clock(), AttemptStatus.SUCCEEDED, None, status.billed, actual)
        draft.output = output
        draft.progress = 1.0
        draft.cost.actual_usd = total_actual(draft)
        return JobStatus.SUCCEEDED

    lifecycle.update(deps, job.tenant, job.id, succeed)


def _collect_output(attempt: Attempt, status: ProviderStatus, key: str, deps: Deps) -> int | None:
    """Bring the output into our bucket (the agent already PUT it there); its size, or None if there is none."""
    if status.output_bytes is not None:
        store_bytes(status.output_bytes, deps.artifacts, key)
    elif status.output_url is not None and deps.artifacts.size(key) is None:
        allow_loopback = bool(deps.settings and deps.settings.allow_loopback_downloads)
        fetch_to_s3(status.output_url, OUTPUT_HOSTS.get(attempt.provider.value, ()), deps.artifacts, key,
                    allow_loopback=allow_loopback)
    return deps.artifacts.size(key)


def _learn(attempt: Attempt, billed: dict[str, float], deps: Deps) -> None:
    """Feed calibration: how long this render really took against the catalog's own estimate."""
    observed = billed.get("gpu_seconds")
    if deps.calibration is None or not observed or not attempt.estimated_render_s:
        return
    offer = _offer(deps, attempt.offer)
    ratio = observed / attempt.estimated_render_s
    # Time-billed offers cost what they run; fixed per-second or per-video prices don't drift with render time.
    cost_ratio = ratio if offer.pricing.kind in ("local_energy", "gpu_second") else 1.0
    deps.calibration.observe(offer.id, ratio, cost_ratio)


def _check_output(deps: Deps, key: str, attempt: Attempt) -> tuple[str | None, ProbeResult | None]:
    from router.media.probe import ProbeError, check_against_spec

    path = deps.artifacts.download(key)
    try:
        probed = deps.probe(path)
    except ProbeError as exc:
        return f"output_unplayable: {exc}", None
    finally:
        Path(path).unlink(missing_ok=True)
    spec = attempt.delivered
    mismatches = check_against_spec(probed, spec.width, spec.height, spec.frames, spec.fps)
    if mismatches:
        return "output_mismatch: " + "; ".join(mismatches), None
    return None, probed


# --- endings -----------------------------------------------------------------------------------------------


def _attempt_failed(job: Job, attempt_id: str, deps: Deps, reason: str, billed: dict[str, float],
                    provider_cost: Decimal | None = None) -> None:
    attempt = _attempt(job, attempt_id)
    assert attempt is not None
    outcome = reason.split(":", 1)[0] if reason.startswith(("content_filtered", "submit_unknown")) else "failed"
    actual = record_ledger(job, attempt, deps, outcome, billed, None, provider_cost=provider_cost)

    def close(draft: Job) -> JobStatus | None:
        current = _attempt(draft, attempt_id)
        if current is None or current.status.ended:
            return None
        close_attempt(current, deps.clock(), AttemptStatus.FAILED, reason, billed, actual)
        draft.cost.actual_usd = total_actual(draft)
        draft.progress = 0.0
        return JobStatus.ROUTED  # a fallback hop: the next route decides whether anything is left

    job = lifecycle.update(deps, job.tenant, job.id, close)
    if job.status is JobStatus.ROUTED:
        _route_next(job, deps)


def _expire(job: Job, deps: Deps, now: datetime) -> None:
    attempt = job.current_attempt
    if attempt is not None and attempt.provider_job_id and not attempt.status.ended:
        try:
            status = deps.providers[attempt.provider].cancel(attempt.provider_job_id)
            record_ledger(job, attempt, deps, "expired", status.billed, None)
        except ProviderError:
            pass  # the render may still finish on its own; its late result is ignored by the terminal job
    late = (now - job.deadline).total_seconds() if job.deadline else 0
    _end(job, deps, JobStatus.EXPIRED, "deadline_expired", f"the deadline passed {late:.0f} s ago with no result")


def _fail(job: Job, deps: Deps, code: str, message: str, detail: str | None) -> None:
    _end(job, deps, JobStatus.FAILED, code, message, details=[detail] if detail else [])


def _end(job: Job, deps: Deps, status: JobStatus, code: str, message: str, details: list[str] | None = None,
         decision: Decision | None = None) -> None:
    def change(draft: Job) -> JobStatus | None:
        if decision is not None:
            draft.routing = decision
        draft.error = JobError(code=code, message=message, details=details or [])
        return status

    lifecycle.update(deps, job.tenant, job.id, change)


# --- helpers -----------------------------------------------------------------------------------------------


def record_ledger(job: Job, attempt: Attempt, deps: Deps, outcome: str, billed: dict[str, float],
                   uri: str | None, provider_cost: Decimal | None = None) -> Decimal:
    """The attempt's ledger row (once per attempt); what it cost, in USD.

    The provider's own stated charge wins where it gives one (RunPod's `cost`); otherwise units times unit price,
    by the provider's billing: GPU time is billed whatever the outcome, per-second and per-video prices only for
    a delivered video, and a content-filtered output is never billed."""
    offer = _offer(deps, attempt.offer)
    spec = attempt.delivered
    gpu_seconds = Decimal(f"{billed.get('gpu_seconds', 0.0):.3f}")
    output_seconds = Decimal(f"{spec.duration_s:.3f}")
    priced = offer.price_for(spec.width, spec.height, spec.duration_s)
    if priced is None:  # the catalog changed under a running attempt: record the units, charge nothing we can't price
        unit, price = "none", Decimal(0)
    else:
        unit, price = priced[0], priced[1].quantize(Decimal("1e-10"))
    delivered = outcome == "succeeded"
    quantity = {"gpu_second": gpu_seconds, "output_second": output_seconds if delivered else Decimal(0),
                "video": Decimal(1 if delivered else 0)}.get(unit, Decimal(0))
    actual = to_money(price * quantity)
    if outcome == "content_filtered":
        actual = Decimal("0.0000")
    elif provider_cost is not None:
        actual = to_money(provider_cost)
    money.charge(deps, LedgerEntry(
        tenant=job.tenant,
        job_id=job.id,
        attempt_id=attempt.id,
        campaign_id=job.request.campaign_id,
        provider=attempt.provider,
        offer=offer.id,
        model=offer.model,
        outcome=outcome,
        billed_units={"gpu_seconds": gpu_seconds, "output_seconds": output_seconds, "frames": Decimal(spec.frames)},
        unit=unit,
        unit_price_usd=price,
        pricing_version=deps.catalog.version,
        estimated_usd=attempt.estimated_cost_usd,
        actual_usd=actual,
        resolution=f"{spec.width}x{spec.height}",
        mode=job.request.mode,
        started_at=attempt.started_at,
        ended_at=deps.clock(),
        provider_job_id=attempt.provider_job_id,
        s3_uri=uri,
    ))
    return actual


def close_attempt(attempt: Attempt, now: datetime, status: AttemptStatus, reason: str | None,
                   billed: dict[str, float], actual: Decimal) -> None:
    attempt.status = status
    attempt.reason = reason
    attempt.ended_at = now
    attempt.billed = {**billed, "output_seconds": round(attempt.delivered.duration_s, 3)}
    attempt.actual_cost_usd = actual


def total_actual(job: Job) -> Decimal:
    return to_money(sum((a.actual_cost_usd or Decimal(0) for a in job.attempts), Decimal(0)))


def _offer(deps: Deps, offer_id: str) -> Offer:
    offer = deps.catalog.get(offer_id)
    if offer is None:
        raise LookupError(f"offer {offer_id} is not in catalog {deps.catalog.version}")
    return offer


def _attempt(job: Job, attempt_id: str) -> Attempt | None:
    return next((a for a in job.attempts if a.id == attempt_id), None)


def _failure_code(job: Job) -> str:
    last = _last_reason(job) or ""
    return "content_filtered" if last.startswith("content_filtered") else "provider_failed"


def _last_reason(job: Job) -> str | None:
    return job.attempts[-1].reason if job.attempts else None
