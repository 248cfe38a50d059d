"""The `finalize` step: bring a succeeded attempt's output into our bucket, check it is the video that was asked
for, bill it, teach the offer's learned model, and end the job `succeeded`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from router.models.job import Attempt, AttemptStatus, Job, JobOutput, JobStatus
from router.models.offer import Offer
from router.models.outcome import AttemptCode, AttemptOutcome, AttemptReason, Billed
from router.policy.learning import Observation
from router.providers.base import ProviderState, ProviderStatus
from router.providers.download import OUTPUT_HOSTS, UnsafeDownload, fetch_to_s3, store_bytes
from router.providers.errors import ProviderError
from router.services import circuits, lifecycle, segments
from router.services.billing import priced_offer, record_ledger
from router.services.deps import Deps
from router.services.poll import on_status
from router.services.poll_chain import Chain, hint_chain, poll_on, silent
from router.services.route import attempt_failed, gave_up, observe
from router.store.artifacts import output_key, s3_uri
from router.store.messages import MessageKind, WorkerMessage

if TYPE_CHECKING:
    from router.media.probe import ProbeResult


def on_finalize(job: Job, message: WorkerMessage, deps: Deps) -> None:
    attempt = job.current_attempt
    if attempt is None or attempt.id != message.attempt_id or attempt.status.ended:
        return
    # Only the chain's own finalize retries; another one (a hint's) leaves that to the chain.
    chain = Chain.CONTINUE if message.chain is not None and message.chain == attempt.poll_chain else Chain.NONE
    provider, ref = deps.providers[attempt.provider], attempt.provider_job_id or attempt.id
    try:
        status = circuits.ask(deps, attempt.target, lambda: provider.status(ref))
    except ProviderError as exc:
        if not gave_up(job, attempt, deps, exc):
            poll_on(job, attempt, deps, None, chain, message, kind=MessageKind.FINALIZE, unanswered=silent(exc))
        return
    if status.state is not ProviderState.SUCCEEDED:
        # The provider's answer changed since the poll (a result gone, a job retried): back to polling.
        on_status(job, attempt, status, deps, chain if chain is Chain.CONTINUE else hint_chain(attempt, deps),
                   message)
        return
    key = output_key(job.tenant, job.id, attempt.id)
    try:
        size = _collect_output(attempt, status, key, deps)
    except UnsafeDownload as exc:
        attempt_failed(job, attempt.id, deps, AttemptReason(AttemptCode.OUTPUT_REJECTED, str(exc)), status.billed,
                       provider_cost=status.cost_usd)
        return
    except httpx.TransportError as exc:  # the output's host didn't answer: bounded like the status call
        if not gave_up(job, attempt, deps, exc):
            poll_on(job, attempt, deps, None, chain, message, kind=MessageKind.FINALIZE, unanswered=True)
        return
    if size is None:
        attempt_failed(job, attempt.id, deps,
                       AttemptReason(AttemptCode.OUTPUT_MISSING, "the provider reported success but no file arrived"),
                       status.billed, provider_cost=status.cost_usd)
        return
    local = deps.artifacts.download(key)  # once: probed, and a segment's last frame or join read from it
    try:
        problem, probed = _check_output(deps, local, attempt)
        # A long-form job's segment: the last frame the next one starts from, or, the last, all of them joined.
        handed = problem or segments.finish_segment(job, attempt, key, local, deps)
    finally:
        Path(local).unlink(missing_ok=True)
    if isinstance(handed, AttemptReason):
        attempt_failed(job, attempt.id, deps, handed, status.billed, provider_cost=status.cost_usd)
        return
    assert probed is not None
    circuits.succeeded(deps, attempt.target)
    uri = s3_uri(deps.artifacts.bucket, key)
    actual = record_ledger(job, attempt, deps, AttemptOutcome.SUCCEEDED, status.billed, uri,
                           provider_cost=status.cost_usd)
    _learn(attempt, status, actual, deps)
    if isinstance(handed, str):
        segments.continue_after(job, attempt, key, handed, status.billed, actual, deps)
        return
    output = handed.output if handed is not None else JobOutput(
        s3_uri=uri, bytes=size, width=probed.width, height=probed.height, frames=probed.frames, fps=probed.fps,
        duration_s=round(probed.duration_s, 3))

    def succeed(draft: Job) -> JobStatus | None:
        current = draft.attempt(attempt.id)
        if current is None or current.status.ended:
            return None
        current.close(deps.clock(), AttemptStatus.SUCCEEDED, None, status.billed, actual)
        if handed is not None and draft.segments is not None:
            draft.segments.done.append(handed.last)
            draft.segments.joined = handed.method
        draft.output = output
        draft.progress = 1.0
        draft.cost.actual_usd = draft.total_actual()
        return JobStatus.SUCCEEDED

    lifecycle.update(deps, job.tenant, job.id, succeed)


def _collect_output(attempt: Attempt, status: ProviderStatus, key: str, deps: Deps) -> int | None:
    """Bring the output into our bucket (the agent already PUT it there); its size, or None if there is none."""
    if status.output_bytes is not None:
        store_bytes(status.output_bytes, deps.artifacts, key)
    elif status.output_url is not None and deps.artifacts.size(key) is None:
        allow_loopback = deps.settings.allow_loopback_downloads
        fetch_to_s3(status.output_url, OUTPUT_HOSTS.get(attempt.provider.value, ()), deps.artifacts, key,
                    allow_loopback=allow_loopback)
    return deps.artifacts.size(key)


def _learn(attempt: Attempt, status: ProviderStatus, actual: Decimal, deps: Deps) -> None:
    """Feed the offer's learned model a delivered attempt: its measured GPU-seconds against the catalog's own p50
    for the same delivery, its bill against the catalog's price of what it billed, and the start delay where the
    provider reports one (RunPod `delayTime`). A box's own power is the price it was placed at, not a surprise."""
    offer = priced_offer(deps, attempt)
    priced = _catalog_priced(offer, attempt, status.billed)
    observe(attempt, Observation(
        ok=True, render_s=status.billed.gpu_seconds, catalog_render_s=attempt.estimated_render_s,
        billed_usd=float(actual), priced_usd=float(priced) if priced is not None else None,
        start_delay_s=status.start_delay_s, cold_start_prior_s=offer.latency.cold_start_s), deps)


def _catalog_priced(offer: Offer, attempt: Attempt, billed: Billed) -> Decimal | None:
    """What the catalog's unit price makes of a delivered attempt's billed units (its cost before any stated bill)."""
    spec = attempt.delivered
    priced = offer.price_for(spec.width, spec.height, spec.duration_s)
    if priced is None:
        return None
    unit, price = priced
    quantity = {"gpu_second": billed.gpu_seconds or 0.0, "output_second": spec.duration_s}.get(unit, 1.0)
    return price * Decimal(f"{quantity:.3f}")


def _check_output(deps: Deps, local: Path, attempt: Attempt) -> tuple[AttemptReason | None, ProbeResult | None]:
    from router.media.probe import ProbeError, check_against_spec

    try:
        probed = deps.probe(local)
    except ProbeError as exc:
        return AttemptReason(AttemptCode.OUTPUT_UNPLAYABLE, str(exc)), None
    spec = attempt.delivered
    mismatches = check_against_spec(probed, spec.width, spec.height, spec.frames, spec.fps)
    if mismatches:
        return AttemptReason(AttemptCode.OUTPUT_MISMATCH, "; ".join(mismatches)), None
    return None, probed
