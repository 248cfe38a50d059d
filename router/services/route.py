"""The `route` step: decide where the job's next attempt runs, hold its money, submit it; and the failures that
send a job back here for its next hop (a failed, given-up or abandoned attempt).

Submission follows the intent-record protocol (docs/architecture.md, "Job lifecycle"): the attempt is written
`submitting` before the provider call and `submitted` after it. A redelivered `route` that finds an attempt
still `submitting` asks the provider about that attempt id first and submits only on a provable "not found".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from router.backoff import backoff
from router.errors import HvrError
from router.models.common import Mode, ProviderKind
from router.models.common import money as common_money
from router.models.decision import Decision, DeliveredSpec, Refusal
from router.models.experiment import ExperimentAssignment
from router.models.job import Attempt, AttemptStatus, Job, JobError, JobStatus, Segments
from router.models.offer import Offer
from router.models.outcome import NOTHING_BILLED, AttemptCode, AttemptOutcome, AttemptReason, Billed
from router.models.request import VideoRequest
from router.policy import learning
from router.policy.context import RoutingContext
from router.policy.engine import route
from router.policy.fallback import excluded_offers
from router.policy.learning import Observation
from router.policy.plan import follow_plan, planned_offer
from router.providers.base import Submission
from router.providers.errors import (
    InputRejected,
    InputUnavailable,
    OutcomeUnknown,
    ProviderError,
    RateLimited,
    Unavailable,
)
from router.services import agents, callbacks, circuits, experiments, lifecycle, money, segments, settle
from router.services.billing import offer_of, record_ledger
from router.services.context import routing_context
from router.services.deps import Deps
from router.services.poll_chain import (
    HEARTBEAT_S,
    MIN_POLL_DELAY_S,
    POLL_BASE_S,
    UNREACHABLE_AFTER_S,
    UNREACHABLE_FLOOR_S,
    Chain,
    hint_chain,
    mark_submitted,
    poll_on,
)
from router.services.uploads import foreign_refs, own_upload_key
from router.store.artifacts import output_key
from router.store.budgets import BudgetRefused
from router.store.messages import MessageKind, WorkerMessage

INPUT_URL_TTL_S = 6 * 3600  # long enough for a queued provider to fetch its inputs


SUBMIT_UNKNOWN_AFTER_S = 600.0  # how long to wait for a webhook naming a job whose submit answer was lost


# Providers answer in real time even when the embedded stack's clock is scaled: never wait less than this.
SUBMIT_UNKNOWN_FLOOR_S = 5.0


def on_route(job: Job, message: WorkerMessage, deps: Deps, redelivered: bool) -> None:
    attempt = job.current_attempt
    if job.status in (JobStatus.SUBMITTED, JobStatus.RUNNING):
        # The first delivery got this far; if it died before queueing its poll, this copy restarts the chain.
        if redelivered and attempt is not None and hint_chain(attempt, deps) is Chain.START:
            poll_on(job, attempt, deps, None, Chain.START, None)
        return
    if attempt is not None and attempt.status is AttemptStatus.SUBMITTING:
        if message.poll_n < attempt.submit_tries:
            return  # a retry since made by another copy of this chain (the sweeper's nudge): that one goes on
        _reconcile(job, attempt, message, deps)
        return
    route_next(job, deps)


def route_next(job: Job, deps: Deps) -> None:
    """Decide (again) and start a new attempt, or end the job if nothing feasible is left."""
    now = deps.clock()
    tried = excluded_offers(((a.offer, a.provider, a.reason.code if a.reason else None) for a in job.attempts
                             if a.status is AttemptStatus.FAILED),
                            deps.catalog.offers)
    # A long-form job's delivered segments don't count: each segment has the attempts a job has.
    tries = sum(1 for a in job.attempts if a.status is not AttemptStatus.SUCCEEDED)
    if tries >= deps.max_attempts:
        _fail(job, deps, _failure_code(job), f"gave up after {tries} attempts", _last_reason(job))
        return
    foreign = foreign_refs(job.request, job.tenant, deps.artifacts.bucket)
    if foreign:  # admission refuses these; a job that got past it anyway ends before any money is held
        _end(job, deps, JobStatus.FAILED if job.attempts else JobStatus.REJECTED, "invalid_input",
             f"{', '.join(foreign)}: not an upload of tenant {job.tenant}; never presigned")
        return
    if job.request.mode is Mode.EXTEND and job.segments is None:
        job = segments.take_client_video(job, deps)
        if job.segments is None:
            return  # the video can't be continued: the job ended saying why
    decision, refused, assignment = _decide_and_reserve(job, job.work_request(), deps, tried, now)
    chosen = decision.chosen
    if chosen is None and refused is not None:
        _end(job, deps, JobStatus.FAILED if job.attempts else JobStatus.REJECTED, "budget_exhausted",
             f"budget {refused.scope} can't cover any feasible offer: {refused}", details=decision.reasons,
             decision=decision)
        return
    if chosen is None:
        if job.attempts:
            _fail(job, deps, _failure_code(job), _last_failure(job) or "attempt failed",
                  "no fallback left: " + "; ".join(decision.reasons)[:900])
        else:
            _end(job, deps, JobStatus.REJECTED, "no_feasible_offer",
                 "no offer can meet this request", details=decision.reasons, decision=decision)
        return
    offer = offer_of(deps, chosen.offer)
    planned = chosen.delivered
    rendered = planned.first_segment()  # all of it, unless it is one segment of a long-form video
    attempt = Attempt(
        n=len(job.attempts) + 1,
        id=_attempt_id(job),
        offer=offer.id,
        provider=offer.provider,
        target=chosen.target,
        started_at=now,
        delivered=rendered,
        estimated_cost_usd=per_render(chosen.estimated_cost_usd, planned),
        estimated_render_s=round(offer.latency.compute_seconds(
            rendered.width, rendered.height, rendered.frames, p90=False), 3),
        explore_until=chosen.explore_until,
    )

    added: list[bool] = []

    def add_intent(draft: Job) -> JobStatus | None:
        added.clear()  # the last try is the one that counts
        if draft.current_attempt is not None and not draft.current_attempt.status.ended:
            return None  # someone else started an attempt meanwhile
        added.append(True)
        draft.routing = decision
        if assignment is not None:
            draft.experiment = assignment
        draft.attempts.append(attempt)
        draft.cost.estimated_usd = chosen.estimated_cost_usd
        if planned.segments > 1 or draft.segments is not None:
            plan = draft.segments or Segments(width=planned.width, height=planned.height, fps=planned.fps, frames=0)
            if not plan.rendered:  # the first render sets the size and rate the joined video is made at
                plan.adopt(planned.width, planned.height, planned.fps)
            plan.frames = plan.done_frames + planned.frames
            draft.segments = plan
            draft.cost.estimated_usd = draft.total_actual() + chosen.estimated_cost_usd  # spent, and the rest
        return JobStatus.ROUTED

    job = lifecycle.update(deps, job.tenant, job.id, add_intent)
    # By this write, not by the attempt's id: a second copy of the route, deciding on the same read, names its
    # attempt the same, and would submit the first copy's attempt again.
    if not added:
        return
    if attempt.explore_until is not None:
        deps.learned.count_exploration(now.date(), chosen.estimated_cost_p90_usd)  # today's caps
    _submit(job, attempt, offer, deps)


def _attempt_id(job: Job) -> str:
    return f"att_{job.id.removeprefix('job_')}_{len(job.attempts) + 1}"


def per_render(amount: Decimal, planned: DeliveredSpec) -> Decimal:
    """An estimate for a whole delivery, for the one render an attempt makes of it (a long-form segment)."""
    return amount if planned.segments == 1 else common_money(amount / planned.segments)


def _decide_and_reserve(job: Job, request: VideoRequest, deps: Deps, tried: frozenset[str], now: datetime,
                        tries: int = 3) -> tuple[Decision, BudgetRefused | None, ExperimentAssignment | None]:
    """Route, then hold the chosen offer's p90 estimate in the job's budgets. A refusal (another job took the
    money since the context was read) routes again with fresh budgets, so a cheaper offer can still fit. An
    experiment may choose another feasible offer first (services.experiments.steer)."""
    assignment: ExperimentAssignment | None = None
    refused: BudgetRefused | None = None
    for _ in range(tries):
        # A job explores at most once: its fallback's time was kept for the hop after that one.
        seed = None if any(a.explore_until is not None for a in job.attempts) else job.id
        context = routing_context(deps, tried, tenant=job.tenant, campaign_id=job.request.campaign_id,
                                  explore_seed=seed)
        decision = route(request, deps.catalog.offers, context, now, job.deadline)
        # A campaign job carries its planned offer: kept while the engine still finds it feasible.
        decision = follow_plan(decision, planned_offer(job), context)
        decision, assignment = experiments.steer(job, decision, context, deps)
        chosen = decision.chosen
        if chosen is None:
            refused = refused or _budget_blocked(decision, context)
            return decision, refused, None
        try:
            money.reserve(deps, job.tenant, job.request.campaign_id, job.id, _attempt_id(job),
                          per_render(chosen.estimated_cost_p90_usd, chosen.delivered), now)
        except BudgetRefused as exc:
            refused = exc
            continue
        if assignment is not None:  # before the intent: a copy redelivered after it would not route again
            experiments.start_twin(job, assignment, deps)
        return decision, None, assignment
    return Decision(chosen=None, fallbacks=[], candidates=decision.candidates, reasons=[str(refused)],
                    decided_at=now), refused, None


def _budget_blocked(decision: Decision, context: RoutingContext) -> BudgetRefused | None:
    """When budgets are the only thing in the way (the job ends `budget_exhausted`): the cheapest offer they
    refused, the scope with the least left among those that refused it, what that scope has left and the offer's
    p90 estimate — the figures `GET /v1/budgets` and `POST /v1/quotes` show at this moment."""
    blocked = [c for c in decision.candidates if c.reasons and all(r.code == Refusal.BUDGET for r in c.reasons)]
    if not blocked:
        return None
    cheapest = min(blocked, key=lambda c: (c.estimated_cost_p90_usd is None, c.estimated_cost_p90_usd or 0, c.offer))
    left = {budget.scope: budget.remaining_usd for budget in context.budgets}
    scope = min((r.scope for r in cheapest.reasons if r.scope in left), key=lambda s: left[s], default=None)
    return BudgetRefused(scope or "budget", left.get(scope or "", Decimal(0)),
                         cheapest.estimated_cost_p90_usd or Decimal(0))


def _submit(job: Job, attempt: Attempt, offer: Offer, deps: Deps) -> None:
    provider = deps.providers[offer.provider]
    pushes = offer.provider is ProviderKind.LOCAL  # the agent PUTs its output; cloud outputs are fetched by us
    try:
        inputs = input_urls(job, deps)
    except ForeignInput as exc:  # nothing was sent: the fallback hop finds the same ref and ends the job
        attempt_failed(job, attempt.id, deps, AttemptReason(AttemptCode.REJECTED, str(exc)))
        return
    submission = Submission(
        attempt_id=attempt.id,
        job_id=job.id,
        tenant=job.tenant,
        offer=offer,
        request=job.work_request(),
        delivered=attempt.delivered,
        output_put_url=deps.artifacts.presign_put(output_key(job.tenant, job.id, attempt.id)) if pushes else None,
        callback_url=callbacks.provider_callback_url(deps, offer.provider, job),
        inputs=inputs,
        deadline=job.deadline,
        stop_at=attempt.explore_until,
        target=attempt.target,
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
        code = AttemptCode.INPUT_REJECTED if isinstance(exc, InputRejected) else AttemptCode.REJECTED
        attempt_failed(job, attempt.id, deps, AttemptReason(code, str(exc)))
        return
    mark_submitted(job, attempt.id, status, deps)


def _retry_submit_later(job: Job, attempt: Attempt, deps: Deps, exc: ProviderError, sent: bool) -> None:
    """Record whether the failed submit can have reached the provider, then come back with a delayed `route`
    (the queue-level backoff; raising instead would burn the message's receive count towards the DLQ)."""
    def change(draft: Job) -> JobStatus | None:
        current = draft.attempt(attempt.id)
        if current is None or current.status is not AttemptStatus.SUBMITTING:
            return None
        current.submit_tries += 1
        current.unsent = not sent
        current.reason = AttemptReason(AttemptCode.SUBMIT_RETRY, f"try {current.submit_tries}: {exc}")
        return draft.status

    job = lifecycle.update(deps, job.tenant, job.id, change)
    current = job.attempt(attempt.id)
    tries = current.submit_tries if current else 1
    if current is not None and current.status is AttemptStatus.SUBMITTING and tries >= deps.max_submit_tries:
        # A target (or a client's input host) that keeps failing must not hold the job until its deadline: the
        # attempt ends with the last error, and the fallback decides what is left.
        code = AttemptCode.INPUT_UNAVAILABLE if isinstance(exc, InputUnavailable) \
            else AttemptCode.SUBMIT_UNKNOWN if sent else AttemptCode.SUBMIT_FAILED
        attempt_failed(job, attempt.id, deps, AttemptReason(code, f"gave up after {tries} submit tries: {exc}"))
        return
    wait = exc.retry_after_s if isinstance(exc, RateLimited) and exc.retry_after_s else backoff(tries, POLL_BASE_S)
    deps.queue.send(WorkerMessage(kind=MessageKind.ROUTE, tenant=job.tenant, job_id=job.id, poll_n=tries),
                    delay_s=max(MIN_POLL_DELAY_S, wait / deps.time_scale))


class ForeignInput(HvrError, ValueError):
    """An `s3://` input that is not one of the job's own tenant's uploads: it is never presigned."""


def input_urls(job: Job, deps: Deps) -> dict[str, str]:
    """Inputs as URLs a provider can GET: the tenant's own uploads presigned, client https URLs as given.

    A presigned GET reads any key the bucket holds, so the key is checked against the job's tenant right here,
    not only at admission."""
    urls = {}
    for field, name, ref in job.work_request().input_refs():  # reference_images[i] as reference_image_{i+1}
        if ref.startswith("s3://"):
            key = own_upload_key(ref, job.tenant, deps.artifacts.bucket)
            if key is None:
                raise ForeignInput(f"{field}: not an upload of tenant {job.tenant}")
            urls[name] = deps.artifacts.presign_get(key, expires_s=INPUT_URL_TTL_S)
        else:
            urls[name] = ref
    return urls


def _reconcile(job: Job, attempt: Attempt, message: WorkerMessage, deps: Deps) -> None:
    offer = offer_of(deps, attempt.offer)
    if attempt.unsent:
        # The last try provably created nothing, but this one may: the record must stop saying so before the call,
        # or a worker killed after the provider accepts would leave `unsent` standing and the next copy of this
        # message would submit a second job for the same attempt.
        if not _clear_unsent(job, attempt, deps):
            return  # another copy of this message took the retry
        _submit(job, attempt, offer, deps)
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
        attempt_failed(job, attempt.id, deps,
                       AttemptReason(AttemptCode.SUBMIT_UNKNOWN, f"the provider never confirmed the job ({exc})"))
        return
    except ProviderError as exc:
        # The target can't be asked now (down, refusing): bounded like an unanswered poll, and never raised,
        # which would only ask the dead target again at once and then leave the attempt to the DLQ.
        if not gave_up(job, attempt, deps, exc):
            _reconcile_later(job, attempt, message, deps, unanswered=True)
        return
    if found is None:
        _submit(job, attempt, offer, deps)  # provably never reached the provider
    else:
        mark_submitted(job, attempt.id, found, deps)


def _clear_unsent(job: Job, attempt: Attempt, deps: Deps) -> bool:
    """Write that a submit of `attempt` may be in flight; False if its record no longer awaits a retry."""
    cleared = False

    def change(draft: Job) -> JobStatus | None:
        nonlocal cleared
        current = draft.attempt(attempt.id)
        cleared = False
        if current is None or current.status is not AttemptStatus.SUBMITTING or not current.unsent:
            return None
        current.unsent, cleared = False, True
        return draft.status

    lifecycle.update(deps, job.tenant, job.id, change)
    return cleared


def _reconcile_later(job: Job, attempt: Attempt, message: WorkerMessage, deps: Deps, unanswered: bool = False) -> None:
    """Ask again with a delayed `route`, backing off; when it is due goes on the attempt (HEARTBEAT_S ahead, so not
    at every try), for the sweeper not to start a second chain beside this one."""
    poll_n = max(message.poll_n, attempt.submit_tries) + 1  # never under submit_tries: see on_route
    delay = max(MIN_POLL_DELAY_S, backoff(poll_n, POLL_BASE_S) / deps.time_scale)
    now = deps.clock()
    due = now + timedelta(seconds=delay)

    def change(draft: Job) -> JobStatus | None:
        current = draft.attempt(attempt.id)
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


def gave_up(job: Job, attempt: Attempt, deps: Deps, exc: Exception, next_hop: NextHop | None = None) -> bool:
    """End the attempt when its target has answered nothing for too long: `agent_lost` for the local GPU,
    `provider_unreachable` for a cloud provider; the job falls back like after any failed attempt. The bound
    leaves a fallback at least half the time that was left when the target went quiet."""
    now = deps.clock()
    since = attempt.unreachable_since or now
    waited = (now - since).total_seconds()
    limit = UNREACHABLE_AFTER_S / deps.time_scale
    if job.deadline is not None:
        limit = min(limit, (job.deadline - since).total_seconds() / 2)
    if waited >= max(UNREACHABLE_FLOOR_S, limit):
        silence = f"answered nothing for {waited:.0f} s (wall clock)"
    elif attempt.provider is ProviderKind.LOCAL and (box := agents.lost(deps, attempt.target)):
        # The fleet registry has already timed this box's silence: its heartbeats stopped a window ago.
        heard = (now - box[attempt.target].last_seen).total_seconds()
        silence = f"answered nothing and missed its heartbeats (last heard {heard:.0f} s ago)"
    else:
        return False
    code = AttemptCode.AGENT_LOST if attempt.provider is ProviderKind.LOCAL else AttemptCode.PROVIDER_UNREACHABLE
    attempt_failed(job, attempt.id, deps, AttemptReason(code, f"{attempt.target} {silence}: {exc}"),
                   next_hop=next_hop)
    return True


NextHop = Callable[[Job, Deps], None]


def queue_route(job: Job, deps: Deps) -> None:
    """The next hop as a message of its own, for a caller that mustn't spend its time routing (the sweeper)."""
    deps.queue.send(WorkerMessage(kind=MessageKind.ROUTE, tenant=job.tenant, job_id=job.id))


def attempt_failed(job: Job, attempt_id: str, deps: Deps, reason: AttemptReason, billed: Billed = NOTHING_BILLED,
                   provider_cost: Decimal | None = None, next_hop: NextHop | None = None) -> None:
    attempt = job.attempt(attempt_id)
    assert attempt is not None
    actual = record_ledger(job, attempt, deps, reason.outcome, billed, None, provider_cost=provider_cost,
                           rendered=reason.rendered)
    if reason.code is not AttemptCode.CONTENT_FILTERED:  # the prompt's doing, not the offer's
        _learn_failure(attempt, deps)
    fall_back(job, attempt_id, deps, reason, billed, actual, next_hop)


def abandon(job: Job, attempt: Attempt, deps: Deps) -> None:
    """An exploring attempt still unfinished at its abandon point: stop it and bill what the provider reports it
    ran (ledger outcome `abandoned`), learn the lower bound that gives its time, and fall back; the reason's code
    rules the offer out for the job (policy.fallback), and the time kept for the fallback is still ahead."""

    assert attempt.explore_until is not None
    billed, actual = _billed_as_abandoned(job, attempt, deps, settle.stop(job, attempt, deps,
                                                                          AttemptOutcome.ABANDONED))
    ran_s = billed.gpu_seconds  # only a measured GPU time bounds the render: wall time holds queue too
    _learn_censored(attempt, ran_s, deps)
    ran = f"after {ran_s:.0f} GPU-seconds" if ran_s else "(no GPU time reported)"
    fall_back(job, attempt.id, deps, AttemptReason(AttemptCode.EXPLORATION_ABANDONED,
                                                   f"not done by its abandon point "
                                                   f"{attempt.explore_until:%Y-%m-%dT%H:%M:%SZ} {ran}; "
                                                   "stopped at the provider"), billed, actual)


def stall(job: Job, attempt: Attempt, deps: Deps, code: AttemptCode) -> bool:
    """A cloud attempt its provider never started (`queue_stalled`, poll_chain.QUEUE_STALL_S) or is still rendering
    far past its expected time (`render_stalled`, poll_chain.render_stall_s): cancel it there and fall back; the
    reason rules the offer out for the job. False, and nothing changed, while the provider can't confirm the cancel:
    a job still there may yet run and bill, so the next poll tries again rather than routing beside it. A render on
    a provider that can't cancel at all (Veo) would never be confirmed: it is left running, billed nothing, and the
    job falls back (as an exploring attempt past its abandon point does)."""
    stopped = settle.stop(job, attempt, deps, AttemptOutcome.ABANDONED)
    provider = deps.providers.get(attempt.provider)
    uncancellable = code is AttemptCode.RENDER_STALLED and provider is not None and not provider.cancellable
    if stopped is None and not uncancellable:
        return False
    waited_min = (deps.clock() - attempt.started_at).total_seconds() * deps.time_scale / 60
    name = attempt.provider.value
    what = (f"{name} never started it in {waited_min:.0f} min" if code is AttemptCode.QUEUE_STALLED
            else f"{name} still rendering it after {waited_min:.0f} min")
    how = "cancelled there" if stopped is not None else "it can't be cancelled: left running, unbilled"
    detail = f"{what}; {how}"
    fall_back(job, attempt.id, deps, AttemptReason(code, detail), *_billed_as_abandoned(job, attempt, deps, stopped))
    return True


def _billed_as_abandoned(job: Job, attempt: Attempt, deps: Deps, stopped: settle.Stopped | None
                         ) -> tuple[Billed, Decimal]:
    """What an attempt stopped at its provider was billed (its ledger row written by the stop); where the provider
    couldn't say or couldn't stop it, nothing, as for an attempt given up on, with its row written here."""
    if stopped is not None:
        return stopped.billed, stopped.actual
    return NOTHING_BILLED, record_ledger(job, attempt, deps, AttemptOutcome.ABANDONED, NOTHING_BILLED, None)


def fall_back(job: Job, attempt_id: str, deps: Deps, reason: AttemptReason, billed: Billed,
              actual: Decimal, next_hop: NextHop | None = None) -> None:
    """Close a failed attempt (its ledger row written) and route the job's next hop, if anything is left: here
    (`route_next`), or however `next_hop` says."""

    def close(draft: Job) -> JobStatus | None:
        current = draft.attempt(attempt_id)
        if current is None or current.status.ended:
            return None
        current.close(deps.clock(), AttemptStatus.FAILED, reason, billed, actual)
        draft.cost.actual_usd = draft.total_actual()
        draft.progress = draft.overall_progress(0.0)  # a long-form job keeps its finished segments
        return JobStatus.ROUTED  # a fallback hop: the next route decides whether anything is left

    job = lifecycle.update(deps, job.tenant, job.id, close)
    if job.status is JobStatus.ROUTED:
        (next_hop or route_next)(job, deps)


def _fail(job: Job, deps: Deps, code: str, message: str, detail: str | None) -> None:
    _end(job, deps, JobStatus.FAILED, code, message, details=[detail] if detail else [])


def _end(job: Job, deps: Deps, status: JobStatus, code: str, message: str, details: list[str] | None = None,
         decision: Decision | None = None) -> None:
    """End the job as `route_next` decided on its read of `job`, unless an attempt was started since: another copy
    of the route placed it (and may hold the budget this copy found taken), and that attempt goes on."""
    def change(draft: Job) -> JobStatus | None:
        if len(draft.attempts) != len(job.attempts) or (draft.current_attempt is not None
                                                         and not draft.current_attempt.status.ended):
            return None
        if decision is not None:
            draft.routing = decision
        draft.error = JobError(code=code, message=message, details=details or [])
        return status

    lifecycle.update(deps, job.tenant, job.id, change)


# The failures a failed job names as its own error code; any other is the provider's failure.
_JOB_ERROR_CODES = frozenset({AttemptCode.CONTENT_FILTERED, AttemptCode.INPUT_REJECTED, AttemptCode.INPUT_UNAVAILABLE,
                              AttemptCode.AGENT_LOST, AttemptCode.PROVIDER_UNREACHABLE})


def _failure_code(job: Job) -> str:
    reason = job.attempts[-1].reason if job.attempts else None
    return reason.code.value if reason is not None and reason.code in _JOB_ERROR_CODES \
        else AttemptCode.PROVIDER_FAILED.value


def _last_failure(job: Job) -> str | None:
    """The last attempt's failure as the job's error message: its detail where the job's error code already
    names it, its whole text otherwise."""
    reason = job.attempts[-1].reason if job.attempts else None
    if reason is None:
        return None
    return reason.detail if reason.code.value == _failure_code(job) else str(reason)


def _last_reason(job: Job) -> str | None:
    reason = job.attempts[-1].reason if job.attempts else None
    return str(reason) if reason is not None else None


def observe(attempt: Attempt, observation: Observation, deps: Deps) -> None:
    """Teach the attempt's offer what it did; on one box of a fleet, that box's own model of the offer too
    (`offer@box`), so placement learns each card's speed (learning.box_factors)."""
    deps.learned.observe(learning.key(attempt.offer), observation, attempt.id)
    if attempt.target in getattr(deps.providers.get(attempt.provider), "box_names", ()):
        deps.learned.observe(learning.key(attempt.offer, attempt.target), observation, attempt.id)


def _learn_failure(attempt: Attempt, deps: Deps) -> None:
    """A failed attempt teaches only the failure rate: a partial render's time says nothing about a whole one."""
    observe(attempt, Observation(ok=False), deps)


def _learn_censored(attempt: Attempt, ran_s: float | None, deps: Deps) -> None:
    """An exploring attempt stopped unfinished: its render takes at least the seconds it ran (a lower bound)."""
    observe(attempt, Observation(ok=True, render_s=ran_s, catalog_render_s=attempt.estimated_render_s,
                                 censored=True), deps)
