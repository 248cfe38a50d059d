"""The `poll` step: ask the attempt's target how it is doing, and act on the answer (finalize, fail, abandon an
exploring attempt at its abandon point, or poll on)."""

from __future__ import annotations

from router.models.common import ProviderKind
from router.models.job import Attempt, AttemptStatus, Job
from router.models.outcome import AttemptCode, AttemptReason
from router.providers.base import ProviderState, ProviderStatus
from router.providers.errors import ProviderError
from router.services import circuits
from router.services.deps import Deps
from router.services.poll_chain import (
    QUEUE_STALL_S,
    RENDER_STALL_FLOOR_S,
    UNREACHABLE_FLOOR_S,
    Chain,
    hint_chain,
    mark_submitted,
    poll_on,
    render_stall_s,
    silent,
)
from router.services.route import abandon, attempt_failed, gave_up, stall
from router.store.messages import MessageKind, WorkerMessage


def on_poll(job: Job, message: WorkerMessage, deps: Deps) -> None:
    attempt = job.current_attempt
    if attempt is None or attempt.id != message.attempt_id or attempt.status.ended:
        return  # a poll for an attempt that has since ended or been replaced
    if message.chain is not None and message.chain != attempt.poll_chain:
        return  # a chain since taken over by a newer one (the sweeper's, a redelivered route's): that one goes on
    adopted = False
    if attempt.provider_job_id is None:
        if attempt.status is AttemptStatus.SUBMITTING and message.provider_job_id:
            # A webhook named the provider's job for an attempt whose submit answer was lost: adopt it.
            job = mark_submitted(job, attempt.id, ProviderStatus(message.provider_job_id, ProviderState.QUEUED),
                                  deps, schedule=False)
            attempt = job.attempt(attempt.id) or attempt
            adopted = True
        if attempt.provider_job_id is None:
            return
    chain = Chain.CONTINUE if message.chain is not None else Chain.START if adopted else hint_chain(attempt, deps)
    provider, ref = deps.providers[attempt.provider], attempt.provider_job_id
    try:
        status = circuits.ask(deps, attempt.target, lambda: provider.status(ref))
    except ProviderError as exc:
        # Not raised: a redelivered message would poll a dead target again at once, and then die in the DLQ.
        if not gave_up(job, attempt, deps, exc):
            poll_on(job, attempt, deps, None, chain, message, unanswered=silent(exc))
        return
    on_status(job, attempt, status, deps, chain, message)


def on_status(job: Job, attempt: Attempt, status: ProviderStatus, deps: Deps, chain: Chain,
               message: WorkerMessage) -> None:
    if status.state is ProviderState.SUCCEEDED:
        # The chain hands over to finalize (which goes on with its number); a hint's finalize is a one-off.
        number = None if chain is Chain.NONE else attempt.poll_chain
        deps.queue.send(WorkerMessage(kind=MessageKind.FINALIZE, tenant=job.tenant, job_id=job.id,
                                      attempt_id=attempt.id, chain=number))
    elif status.state in (ProviderState.FAILED, ProviderState.CANCELLED):
        if status.content_filtered:
            attempt_failed(job, attempt.id, deps,
                           AttemptReason(AttemptCode.CONTENT_FILTERED, status.error or "the safety filter"))
            return
        error = status.error or f"provider reported {status.state.value}"
        input_fault = _input_fault(error)
        if input_fault is None:
            circuits.failed(deps, attempt.target)
        # An input fault is the client's input failing the render, not the target: its circuit must not open for it.
        reason = AttemptReason(input_fault or AttemptCode.PROVIDER_FAILED, error)
        attempt_failed(job, attempt.id, deps, reason, billed=status.billed, provider_cost=status.cost_usd)
    elif attempt.explore_until is not None and deps.clock() >= attempt.explore_until:
        abandon(job, attempt, deps)
    elif (stalled := _stalled(attempt, status, deps)) is not None and stall(job, attempt, deps, stalled):
        return
    else:
        poll_on(job, attempt, deps, status, chain, message)


def _stalled(attempt: Attempt, status: ProviderStatus, deps: Deps) -> AttemptCode | None:
    """Why a cloud attempt its provider still holds is taken for stuck, if it is: never started in QUEUE_STALL_S, or
    not done by render_stall_s. The GPU agent's queue is planned, and a box gone quiet is found by its heartbeats."""
    if attempt.provider is ProviderKind.LOCAL or status.state.ended:
        return None
    waited_s = (deps.clock() - attempt.started_at).total_seconds()
    # A job that started once and was re-queued (a provider's worker lost) is still being worked on: it has the
    # render's allowance, not the queue's.
    if status.state is ProviderState.QUEUED and attempt.status is not AttemptStatus.RUNNING:
        limit, floor, code = QUEUE_STALL_S, UNREACHABLE_FLOOR_S, AttemptCode.QUEUE_STALLED
    else:
        limit, floor, code = render_stall_s(attempt), RENDER_STALL_FLOOR_S, AttemptCode.RENDER_STALLED
    return code if waited_s >= max(floor, limit / deps.time_scale) else None


# How the agent's comfyui engine reports an input it could not fetch (agent/engines/comfyui.py `_download`).
_AGENT_INPUT_FAULTS = {"input refused:": AttemptCode.INPUT_REJECTED,
                       "input download failed:": AttemptCode.INPUT_UNAVAILABLE}


def _input_fault(error: str) -> AttemptCode | None:
    return next((code for prefix, code in _AGENT_INPUT_FAULTS.items() if error.startswith(prefix)), None)
