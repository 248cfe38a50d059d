"""The jobs-queue use cases: route, poll and finalize one job. Every step is safe to run twice.

Submission follows the intent-record protocol (ARCHITECTURE §5, reliability §2.3): the attempt is written
`submitting` before the provider call and `submitted` after it. A redelivered `route` that finds an attempt
still `submitting` asks the provider about that attempt id first and submits only on a provable "not found".
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from router.backoff import backoff
from router.models.common import ProviderKind
from router.models.common import money as to_money
from router.models.decision import Decision
from router.models.job import Attempt, AttemptStatus, Job, JobError, JobOutput, JobStatus
from router.models.ledger import LedgerEntry
from router.models.offer import LocalEnergyPricing, Offer
from router.policy import learning
from router.policy.engine import route
from router.policy.fallback import excluded_offers
from router.policy.learning import Observation
from router.policy.plan import follow_plan, planned_offer
from router.providers.base import ProviderState, ProviderStatus, Submission
from router.providers.download import OUTPUT_HOSTS, UnsafeDownload, fetch_to_s3, store_bytes
from router.providers.errors import (
    InputRejected,
    InputUnavailable,
    OutcomeUnknown,
    ProviderError,
    RateLimited,
    Unavailable,
)
from router.services import callbacks, circuits, lifecycle, money
from router.services.context import routing_context
from router.services.deps import Deps
from router.services.uploads import INPUT_FIELDS, foreign_refs, own_upload_key
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
# How far ahead a poll chain records when it is next due: the chain rewrites the job about this often rather than
# at every poll, and the sweeper can tell a live chain from a lost one (sweeper.CHAIN_GRACE_S).
HEARTBEAT_S = 600.0
# A target that answers nothing about an attempt (status, lookup) for this long has lost it: the attempt ends
# `agent_lost` / `provider_unreachable` and the job falls back. Never less than a real-time floor: an agent restarts
# and a queue lags in wall seconds, whatever the embedded stack's time scale.
UNREACHABLE_AFTER_S = 300.0
UNREACHABLE_FLOOR_S = 5.0
# A due chain message that failed once comes back after the jobs queue's visibility timeout (infra/template.yaml):
# only past due plus this is a chain taken for lost.
CHAIN_GRACE_S = 720.0


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
        if message.kind is MessageKind.POLL and _awaits_settling(job, message.attempt_id):
            from router.services import settle  # it builds on this module's ledger helpers

            settle.settle_late(job, message, deps)
        return
    now = deps.clock()
    if job.deadline is not None and now > job.deadline:
        _expire(job, deps, now)
        return
    if message.kind is MessageKind.ROUTE:
        _on_route(job, message, deps, redelivered=receive_count > 1)
    elif message.kind is MessageKind.POLL:
        _on_poll(job, message, deps)
    else:
        _on_finalize(job, message, deps)


# --- route -------------------------------------------------------------------------------------------------


def _on_route(job: Job, message: WorkerMessage, deps: Deps, redelivered: bool) -> None:
    attempt = job.current_attempt
    if job.status in (JobStatus.SUBMITTED, JobStatus.RUNNING):
        # The first delivery got this far; if it died before queueing its poll, this copy restarts the chain.
        if redelivered and attempt is not None and _hint_chain(attempt, deps) is _Chain.START:
            _poll_on(job, attempt, deps, None, _Chain.START, None)
        return
    if attempt is not None and attempt.status is AttemptStatus.SUBMITTING:
        if message.poll_n < attempt.submit_tries:
            return  # a retry since made by another copy of this chain (the sweeper's nudge): that one goes on
        _reconcile(job, attempt, message, deps)
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
    foreign = foreign_refs(job.request, job.tenant, deps.artifacts.bucket)
    if foreign:  # admission refuses these; a job that got past it anyway ends before any money is held
        _end(job, deps, JobStatus.FAILED if job.attempts else JobStatus.REJECTED, "invalid_input",
             f"{', '.join(foreign)}: not an upload of tenant {job.tenant}; never presigned")
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
        explore_until=chosen.explore_until,
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
    if attempt.explore_until is not None and deps.learned is not None:
        deps.learned.count_exploration(now.date(), chosen.estimated_cost_p90_usd)  # today's caps
    _submit(job, attempt, offer, deps)


def _attempt_id(job: Job) -> str:
    return f"att_{job.id.removeprefix('job_')}_{len(job.attempts) + 1}"


def _decide_and_reserve(job: Job, deps: Deps, tried: frozenset[str], now: datetime,
                        tries: int = 3) -> tuple[Decision, BudgetRefused | None]:
    """Route, then hold the chosen offer's p90 estimate in the job's budgets. A refusal (another job took the
    money since the context was read) routes again with fresh budgets, so a cheaper offer can still fit."""
    refused: BudgetRefused | None = None
    for _ in range(tries):
        # A job explores at most once: its fallback's time was kept for the hop after that one.
        seed = None if any(a.explore_until is not None for a in job.attempts) else job.id
        context = routing_context(deps, tried, tenant=job.tenant, campaign_id=job.request.campaign_id,
                                  explore_seed=seed)
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
    try:
        inputs = _input_urls(job, deps)
    except ForeignInput as exc:  # nothing was sent: the fallback hop finds the same ref and ends the job
        _attempt_failed(job, attempt.id, deps, f"rejected: {exc}", billed={})
        return
    submission = Submission(
        attempt_id=attempt.id,
        job_id=job.id,
        tenant=job.tenant,
        offer=offer,
        request=job.request,
        delivered=attempt.delivered,
        output_put_url=deps.artifacts.presign_put(output_key(job.tenant, job.id, attempt.id)) if pushes else None,
        callback_url=callbacks.provider_callback_url(deps, offer.provider, job),
        inputs=inputs,
        deadline=job.deadline,
        stop_at=attempt.explore_until,
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
        code = "input_rejected" if isinstance(exc, InputRejected) else "rejected"
        _attempt_failed(job, attempt.id, deps, f"{code}: {exc}", billed={})
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
    if current is not None and current.status is AttemptStatus.SUBMITTING and tries >= deps.max_submit_tries:
        # A target (or a client's input host) that keeps failing must not hold the job until its deadline: the
        # attempt ends with the last error, and the fallback decides what is left.
        code = "input_unavailable" if isinstance(exc, InputUnavailable) else "submit_unknown" if sent \
            else "submit_failed"
        _attempt_failed(job, attempt.id, deps, f"{code}: gave up after {tries} submit tries: {exc}"[:300], billed={})
        return
    wait = exc.retry_after_s if isinstance(exc, RateLimited) and exc.retry_after_s else backoff(tries, POLL_BASE_S)
    deps.queue.send(WorkerMessage(kind=MessageKind.ROUTE, tenant=job.tenant, job_id=job.id, poll_n=tries),
                    delay_s=max(MIN_POLL_DELAY_S, wait / deps.time_scale))


class ForeignInput(ValueError):
    """An `s3://` input that is not one of the job's own tenant's uploads: it is never presigned."""


def _input_urls(job: Job, deps: Deps) -> dict[str, str]:
    """Inputs as URLs a provider can GET: the tenant's own uploads presigned, client https URLs as given.

    A presigned GET reads any key the bucket holds, so the key is checked against the job's tenant right here,
    not only at admission."""
    urls = {}
    for field in INPUT_FIELDS:
        ref = getattr(job.request, field)
        if ref and ref.startswith("s3://"):
            key = own_upload_key(ref, job.tenant, deps.artifacts.bucket)
            if key is None:
                raise ForeignInput(f"{field}: not an upload of tenant {job.tenant}")
            urls[field] = deps.artifacts.presign_get(key, expires_s=INPUT_URL_TTL_S)
        elif ref:
            urls[field] = ref
    return urls


def _reconcile(job: Job, attempt: Attempt, message: WorkerMessage, deps: Deps) -> None:
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
            _reconcile_later(job, attempt, message, deps)
            return
        _attempt_failed(job, attempt.id, deps, f"submit_unknown: the provider never confirmed the job ({exc})",
                        billed={})
        return
    except ProviderError as exc:
        # The target can't be asked now (down, refusing): bounded like an unanswered poll, and never raised,
        # which would only ask the dead target again at once and then leave the attempt to the DLQ.
        if not _gave_up(job, attempt, deps, exc):
            _reconcile_later(job, attempt, message, deps, unanswered=True)
        return
    if found is None:
        _submit(job, attempt, offer, deps)  # provably never reached the provider
    else:
        _mark_submitted(job, attempt.id, found, deps)


def _reconcile_later(job: Job, attempt: Attempt, message: WorkerMessage, deps: Deps, unanswered: bool = False) -> None:
    """Ask again with a delayed `route`, backing off; when it is due goes on the attempt (HEARTBEAT_S ahead, so not
    at every try), for the sweeper not to start a second chain beside this one."""
    poll_n = max(message.poll_n, attempt.submit_tries) + 1  # never under submit_tries: see _on_route
    delay = max(MIN_POLL_DELAY_S, backoff(poll_n, POLL_BASE_S) / deps.time_scale)
    now = deps.clock()
    due = now + timedelta(seconds=delay)

    def change(draft: Job) -> JobStatus | None:
        current = _attempt(draft, attempt.id)
        if current is None or current.status is not AttemptStatus.SUBMITTING:
            return None
        worth = current.poll_due_at is None or current.poll_due_at < due
        if worth:
            current.poll_due_at = due + timedelta(seconds=HEARTBEAT_S / deps.time_scale)
        if unanswered and current.unreachable_since is None:
            current.unreachable_since = now
            worth = True
        return draft.status if worth else None

    lifecycle.update(deps, job.tenant, job.id, change)
    deps.queue.send(WorkerMessage(kind=MessageKind.ROUTE, tenant=job.tenant, job_id=job.id, poll_n=poll_n),
                    delay_s=delay)


def _mark_submitted(job: Job, attempt_id: str, status: ProviderStatus, deps: Deps, schedule: bool = True) -> Job:
    """`submitted`, with the provider's id; with `schedule`, the attempt's poll chain starts in the same write."""
    delay = max(MIN_POLL_DELAY_S, backoff(0, POLL_BASE_S) / deps.time_scale)
    marked: list[bool] = []

    def change(draft: Job) -> JobStatus | None:
        marked.clear()  # the last try is the one that counts
        attempt = _attempt(draft, attempt_id)
        if attempt is None or attempt.status is not AttemptStatus.SUBMITTING:
            return None
        attempt.status = AttemptStatus.SUBMITTED
        attempt.provider_job_id = status.provider_job_id
        attempt.reason, attempt.unsent, attempt.unreachable_since = None, False, None  # retries are history now
        if schedule:
            attempt.poll_chain += 1
            attempt.poll_due_at = deps.clock() + timedelta(seconds=delay + HEARTBEAT_S / deps.time_scale)
        marked.append(True)
        return JobStatus.SUBMITTED

    job = lifecycle.update(deps, job.tenant, job.id, change)
    attempt = _attempt(job, attempt_id)
    if schedule and marked and attempt is not None and attempt.status is AttemptStatus.SUBMITTED:
        deps.queue.send(WorkerMessage(kind=MessageKind.POLL, tenant=job.tenant, job_id=job.id, attempt_id=attempt_id,
                                      chain=attempt.poll_chain), delay_s=delay)
    return job


# --- poll --------------------------------------------------------------------------------------------------


class _Chain(Enum):
    """What a poll does about the attempt's one poll chain."""

    CONTINUE = "continue"  # the message is the chain's own: queue its next one
    START = "start"  # no chain is alive (or this one takes over): start one, which supersedes any older
    NONE = "none"  # a webhook's hint while a chain is alive: record what it learned, queue nothing


def _on_poll(job: Job, message: WorkerMessage, deps: Deps) -> None:
    attempt = job.current_attempt
    if attempt is None or attempt.id != message.attempt_id or attempt.status.ended:
        return  # a poll for an attempt that has since ended or been replaced
    if message.chain is not None and message.chain != attempt.poll_chain:
        return  # a chain since taken over by a newer one (the sweeper's, a redelivered route's): that one goes on
    adopted = False
    if attempt.provider_job_id is None:
        if attempt.status is AttemptStatus.SUBMITTING and message.provider_job_id:
            # A webhook named the provider's job for an attempt whose submit answer was lost: adopt it.
            job = _mark_submitted(job, attempt.id, ProviderStatus(message.provider_job_id, ProviderState.QUEUED),
                                  deps, schedule=False)
            attempt = _attempt(job, attempt.id) or attempt
            adopted = True
        if attempt.provider_job_id is None:
            return
    chain = _Chain.CONTINUE if message.chain is not None else _Chain.START if adopted else _hint_chain(attempt, deps)
    provider, ref = deps.providers[attempt.provider], attempt.provider_job_id
    try:
        status = circuits.ask(deps, attempt.target, lambda: provider.status(ref))
    except ProviderError as exc:
        # Not raised: a redelivered message would poll a dead target again at once, and then die in the DLQ.
        if not _gave_up(job, attempt, deps, exc):
            _poll_on(job, attempt, deps, None, chain, message, unanswered=_silent(exc))
        return
    _on_status(job, attempt, status, deps, chain, message)


def _on_status(job: Job, attempt: Attempt, status: ProviderStatus, deps: Deps, chain: _Chain,
               message: WorkerMessage) -> None:
    if status.state is ProviderState.SUCCEEDED:
        # The chain hands over to finalize (which goes on with its number); a hint's finalize is a one-off.
        number = None if chain is _Chain.NONE else attempt.poll_chain
        deps.queue.send(WorkerMessage(kind=MessageKind.FINALIZE, tenant=job.tenant, job_id=job.id,
                                      attempt_id=attempt.id, chain=number))
    elif status.state in (ProviderState.FAILED, ProviderState.CANCELLED):
        if status.content_filtered:
            _attempt_failed(job, attempt.id, deps, f"content_filtered: {status.error or 'the safety filter'}",
                            billed={})
            return
        reason = status.error or f"provider reported {status.state.value}"
        input_fault = _input_fault(reason)
        if input_fault is None:
            circuits.failed(deps, attempt.target)
        else:  # the client's input failed the render, not the target: its circuit must not open for it
            reason = f"{input_fault}: {reason}"
        _attempt_failed(job, attempt.id, deps, reason, billed=status.billed, provider_cost=status.cost_usd)
    elif attempt.explore_until is not None and deps.clock() >= attempt.explore_until:
        _abandon(job, attempt, deps)
    else:
        _poll_on(job, attempt, deps, status, chain, message)


# How the agent's comfyui engine reports an input it could not fetch (agent/engines/comfyui.py `_download`).
_AGENT_INPUT_FAULTS = {"input refused:": "input_rejected", "input download failed:": "input_unavailable"}


def _input_fault(error: str) -> str | None:
    return next((code for prefix, code in _AGENT_INPUT_FAULTS.items() if error.startswith(prefix)), None)


def _hint_chain(attempt: Attempt, deps: Deps) -> _Chain:
    """A message outside the chain (a webhook's hint, the sweeper's nudge) starts one only where none is alive."""
    return _Chain.NONE if chain_alive(attempt, deps.clock(), deps.time_scale) else _Chain.START


def chain_alive(attempt: Attempt, now: datetime, time_scale: float) -> bool:
    """Whether the attempt's chain has a message due that can't have been lost yet: due, plus a visibility
    timeout for a failed delivery to come back (scaled, never under the real-time floor)."""
    grace = max(UNREACHABLE_FLOOR_S, CHAIN_GRACE_S / time_scale)
    return attempt.poll_due_at is not None and now <= attempt.poll_due_at + timedelta(seconds=grace)


def _poll_on(job: Job, attempt: Attempt, deps: Deps, status: ProviderStatus | None, chain: _Chain,
             message: WorkerMessage | None, kind: MessageKind = MessageKind.POLL, unanswered: bool = False) -> None:
    """Record what the poll learned and queue the chain's next message, in one write made only when it is worth
    one: the attempt started running, progress moved, the target stopped (`unanswered`) or started answering
    again, a chain starts, or the chain's recorded due time (HEARTBEAT_S ahead) would run out."""
    now = deps.clock()
    poll_n = 0 if chain is _Chain.START or message is None else message.poll_n + 1
    delay = max(MIN_POLL_DELAY_S, backoff(poll_n, POLL_BASE_S) / deps.time_scale)
    if attempt.explore_until is not None and attempt.explore_until > now:
        # An exploring attempt's abandon point gets a poll of its own; past it (the target not answering), the
        # backoff stands.
        delay = min(delay, max(MIN_POLL_DELAY_S, (attempt.explore_until - now).total_seconds()))
    due = now + timedelta(seconds=delay)
    running = status is not None and status.state is ProviderState.RUNNING
    numbers: list[int] = []

    def change(draft: Job) -> JobStatus | None:
        numbers.clear()  # the last try is the one that counts
        current = _attempt(draft, attempt.id)
        if current is None or current.status.ended:
            return None
        if chain is _Chain.CONTINUE and message is not None and current.poll_chain != message.chain:
            return None  # taken over meanwhile
        worth = chain is _Chain.START
        if chain is _Chain.START:
            current.poll_chain += 1
        if worth or (chain is _Chain.CONTINUE and (current.poll_due_at is None or current.poll_due_at < due)):
            current.poll_due_at = due + timedelta(seconds=HEARTBEAT_S / deps.time_scale)
            worth = True
        if unanswered and current.unreachable_since is None:
            current.unreachable_since = now
            worth = True
        elif status is not None and current.unreachable_since is not None:
            current.unreachable_since = None  # it answers again: the next silence counts from zero
            worth = True
        if running and current.status is not AttemptStatus.RUNNING:
            current.status = AttemptStatus.RUNNING
            worth = True
        if status is not None:
            worth = worth or status.progress - draft.progress >= 0.05
            draft.progress = round(max(draft.progress, status.progress), 3)
        numbers.append(current.poll_chain)
        if not worth:
            return None
        return JobStatus.RUNNING if running else draft.status

    job = lifecycle.update(deps, job.tenant, job.id, change)
    current = _attempt(job, attempt.id)
    if chain is _Chain.NONE or current is None or current.status.ended or not numbers:
        return
    if current.poll_chain != numbers[-1]:
        return  # another chain started meanwhile: it goes on, this one stops
    deps.queue.send(WorkerMessage(kind=kind, tenant=job.tenant, job_id=job.id, attempt_id=attempt.id, poll_n=poll_n,
                                  chain=current.poll_chain), delay_s=delay)


def _silent(exc: Exception) -> bool:
    """Whether a failed call starts the target's silence clock: an open circuit (no call made) only lets it run on,
    or other jobs' failed renders could end this attempt while its target answers."""
    return not isinstance(exc, circuits.CircuitOpen)


def _gave_up(job: Job, attempt: Attempt, deps: Deps, exc: Exception) -> bool:
    """End the attempt when its target has answered nothing for too long: `agent_lost` for the local GPU,
    `provider_unreachable` for a cloud provider; the job falls back like after any failed attempt. The bound
    leaves a fallback at least half the time that was left when the target went quiet."""
    now = deps.clock()
    since = attempt.unreachable_since or now
    waited = (now - since).total_seconds()
    limit = UNREACHABLE_AFTER_S / deps.time_scale
    if job.deadline is not None:
        limit = min(limit, (job.deadline - since).total_seconds() / 2)
    if waited < max(UNREACHABLE_FLOOR_S, limit):
        return False
    code = "agent_lost" if attempt.provider is ProviderKind.LOCAL else "provider_unreachable"
    _attempt_failed(job, attempt.id, deps, f"{code}: {attempt.target} answered nothing for {waited:.0f} s "
                                           f"(wall clock): {exc}"[:300], billed={})
    return True


# --- finalize ----------------------------------------------------------------------------------------------


def _on_finalize(job: Job, message: WorkerMessage, deps: Deps) -> None:
    attempt = job.current_attempt
    if attempt is None or attempt.id != message.attempt_id or attempt.status.ended:
        return
    # Only the chain's own finalize retries; another one (a hint's) leaves that to the chain.
    chain = _Chain.CONTINUE if message.chain is not None and message.chain == attempt.poll_chain else _Chain.NONE
    provider, ref = deps.providers[attempt.provider], attempt.provider_job_id or attempt.id
    try:
        status = circuits.ask(deps, attempt.target, lambda: provider.status(ref))
    except ProviderError as exc:
        if not _gave_up(job, attempt, deps, exc):
            _poll_on(job, attempt, deps, None, chain, message, kind=MessageKind.FINALIZE, unanswered=_silent(exc))
        return
    if status.state is not ProviderState.SUCCEEDED:
        # The provider's answer changed since the poll (a result gone, a job retried): back to polling.
        _on_status(job, attempt, status, deps, chain if chain is _Chain.CONTINUE else _hint_chain(attempt, deps),
                   message)
        return
    key = output_key(job.tenant, job.id, attempt.id)
    try:
        size = _collect_output(attempt, status, key, deps)
    except UnsafeDownload as exc:
        _attempt_failed(job, attempt.id, deps, f"output_rejected: {exc}", billed=status.billed,
                        provider_cost=status.cost_usd)
        return
    except httpx.TransportError as exc:  # the output's host didn't answer: bounded like the status call
        if not _gave_up(job, attempt, deps, exc):
            _poll_on(job, attempt, deps, None, chain, message, kind=MessageKind.FINALIZE, unanswered=True)
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
    _learn(attempt, status, actual, deps)
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


def _learn(attempt: Attempt, status: ProviderStatus, actual: Decimal, deps: Deps) -> None:
    """Feed the offer's learned model a delivered attempt: its measured GPU-seconds against the catalog's own p50
    for the same delivery, its bill against the catalog's price of what it billed, and the start delay where the
    provider reports one (RunPod `delayTime`)."""
    if deps.learned is None:
        return
    offer = _offer(deps, attempt.offer)
    priced = _catalog_priced(offer, attempt, status.billed)
    deps.learned.observe(learning.key(offer.id), Observation(
        ok=True, render_s=status.billed.get("gpu_seconds"), catalog_render_s=attempt.estimated_render_s,
        billed_usd=float(actual), priced_usd=float(priced) if priced is not None else None,
        start_delay_s=status.start_delay_s, cold_start_prior_s=offer.latency.cold_start_s), attempt.id)


def _learn_failure(attempt: Attempt, deps: Deps) -> None:
    """A failed attempt teaches only the failure rate: a partial render's time says nothing about a whole one."""
    if deps.learned is not None:
        deps.learned.observe(learning.key(attempt.offer), Observation(ok=False), attempt.id)


def _learn_censored(attempt: Attempt, ran_s: float | None, deps: Deps) -> None:
    """An exploring attempt stopped unfinished: its render takes at least the seconds it ran (a lower bound)."""
    if deps.learned is not None:
        deps.learned.observe(learning.key(attempt.offer), Observation(
            ok=True, render_s=ran_s, catalog_render_s=attempt.estimated_render_s, censored=True), attempt.id)


def _catalog_priced(offer: Offer, attempt: Attempt, billed: dict[str, float]) -> Decimal | None:
    """What the catalog's unit price makes of a delivered attempt's billed units (its cost before any stated bill)."""
    spec = attempt.delivered
    priced = offer.price_for(spec.width, spec.height, spec.duration_s)
    if priced is None:
        return None
    unit, price = priced
    quantity = {"gpu_second": billed.get("gpu_seconds", 0.0), "output_second": spec.duration_s}.get(unit, 1.0)
    return price * Decimal(f"{quantity:.3f}")


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
    if outcome != "content_filtered":  # the prompt's doing, not the offer's
        _learn_failure(attempt, deps)
    _fall_back(job, attempt_id, deps, reason, billed, actual)


def _abandon(job: Job, attempt: Attempt, deps: Deps) -> None:
    """An exploring attempt still unfinished at its abandon point: stop it and bill what the provider reports it
    ran (ledger outcome `abandoned`), learn the lower bound that gives its time, and fall back; the reason's code
    rules the offer out for the job (policy.fallback), and the time kept for the fallback is still ahead."""
    from router.services import settle  # it builds on this module's ledger helpers

    assert attempt.explore_until is not None
    stopped = settle.stop(job, attempt, deps, "abandoned")
    billed = stopped.billed if stopped is not None else {}
    # The provider can't say now (the target went quiet): nothing billed, as for an attempt given up on.
    actual = stopped.actual if stopped is not None else record_ledger(job, attempt, deps, "abandoned", {}, None)
    ran_s = billed.get("gpu_seconds")  # only a measured GPU time bounds the render: wall time holds queue too
    _learn_censored(attempt, ran_s, deps)
    ran = f"after {ran_s:.0f} GPU-seconds" if ran_s else "(no GPU time reported)"
    _fall_back(job, attempt.id, deps, f"exploration_abandoned: not done by its abandon point "
                                      f"{attempt.explore_until:%Y-%m-%dT%H:%M:%SZ} {ran}; stopped at the provider",
               billed, actual)


def _fall_back(job: Job, attempt_id: str, deps: Deps, reason: str, billed: dict[str, float],
               actual: Decimal) -> None:
    """Close a failed attempt (its ledger row written) and route the job's next hop, if anything is left."""

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
    """End the job `expired`; its open attempt is stopped at the provider and billed what it ran, or, where the
    provider can't say yet, kept open to be settled late (router.services.settle)."""
    from router.services import settle

    attempt = job.current_attempt
    open_id = attempt.id if attempt is not None and not attempt.status.ended else None
    stopped = settle.stop(job, attempt, deps, "expired") if attempt is not None and open_id else None
    late = (now - job.deadline).total_seconds() if job.deadline else 0

    def change(draft: Job) -> JobStatus | None:
        current = draft.current_attempt
        if current is not None and current.id == open_id and not current.status.ended:
            settle.close_or_hold(current, stopped, deps.clock(), "expired", "deadline_expired: stopped at the provider")
        draft.cost.actual_usd = total_actual(draft)
        draft.error = JobError(code="deadline_expired", message=f"the deadline passed {late:.0f} s ago with no result")
        return JobStatus.EXPIRED

    lifecycle.update(deps, job.tenant, job.id, change)


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
                   uri: str | None, provider_cost: Decimal | None = None, rendered: bool | None = None) -> Decimal:
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
    # A video the provider rendered is billed even when we no longer wanted it (a cancel it couldn't stop).
    delivered = outcome == "succeeded" if rendered is None else rendered
    quantity = {"gpu_second": gpu_seconds, "output_second": output_seconds if delivered else Decimal(0),
                "video": Decimal(1 if delivered else 0)}.get(unit, Decimal(0))
    actual = to_money(price * quantity)
    if outcome == "content_filtered":
        actual = Decimal("0.0000")
    elif provider_cost is not None:
        actual = to_money(provider_cost)
    # The owned GPU: energy is what the render cost; its share of depreciation is kept beside it, charged or not.
    local = offer.pricing if isinstance(offer.pricing, LocalEnergyPricing) else None
    energy = to_money(local.energy_usd_per_gpu_second * gpu_seconds) if local is not None else None
    amortized = to_money(local.depreciation_usd_per_gpu_second * gpu_seconds) if local is not None else None
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
        cost_basis=local.cost_basis if local is not None else None,
        energy_usd=energy,
        amortized_usd=amortized,
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


def _awaits_settling(job: Job, attempt_id: str | None) -> bool:
    attempt = _attempt(job, attempt_id) if attempt_id else None
    return attempt is not None and attempt.awaits_settling


def _failure_code(job: Job) -> str:
    code = (_last_reason(job) or "").split(":", 1)[0]
    return code if code in ("content_filtered", "input_rejected", "input_unavailable", "agent_lost",
                            "provider_unreachable") else "provider_failed"


def _last_reason(job: Job) -> str | None:
    return job.attempts[-1].reason if job.attempts else None
