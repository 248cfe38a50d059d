"""Campaigns: intake from inline items or an s3:// manifest, streamed expansion, the plan, release and pacing.

Each campaign runs one chain of campaigns-queue messages, "do step N":

    open → intake (a chunk of lines per step) → plan → release (a chunk of jobs per step) → pace … → done

The stored campaign says what step N is (phase and cursors), so a message carries only its number. A message whose
step is not the stored one is a duplicate or a stale copy and does nothing; two copies of the current one both do
the (idempotent) work and a conditional write on the step lets exactly one move the chain on and send the next
message. A crash between that write and the send is repaired by the next stale copy (`next_sent`), and the SQS
redelivery of the message that crashed is such a copy.

Every step is safe to repeat: item rows are keyed by item id (the first line wins), invalid lines by line, jobs by
an id derived from (campaign id, item id) and created with a conditional put, so no re-run, redelivery or
re-upload creates a second job. Chunks end after `chunk_lines` lines or when the invocation runs short of time, so
a 100,000-line manifest is many short steps, never one long one.

Pacing keeps the local GPU's queue short: local items are released while the work queued on the GPU is under a
horizon, the rest are held and re-planned at every pace step against the GPU's real queue, its health and the
budget left; held items that no longer fit spill to their cloud offer, and items the budget can't cover wait.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError

from router.errors import field_errors
from router.models.budget import BudgetUpdate, period_of
from router.models.campaign import (
    NAME_PATTERN,
    Campaign,
    CampaignCreate,
    CampaignSpec,
    CampaignView,
    Counts,
    InvalidItem,
    ItemAtRisk,
    Phase,
    Progress,
    campaign_id,
    item_job_id,
)
from router.models.campaign_plan import EntryState, PlanEntry, PlanInput, StoredPlan
from router.models.campaign_queue import CampaignMessage, ManifestDrop, manifest_key_parts
from router.models.common import Circuit, ProviderKind, iso, money
from router.models.decision import Chosen, Decision
from router.models.job import Job, JobStatus
from router.models.manifest import ParsedLine, parse_header, parse_line
from router.models.request import VideoRequest
from router.policy import localqueue
from router.policy.context import RoutingContext, TargetState
from router.policy.plan import PLAN_REASON, PlanParams, idle_local, item_input, plan
from router.services.context import learned_snapshot, priced_queue, routing_context
from router.services.deps import Deps, default_deps
from router.services.money import set_budget
from router.services.submit import InvalidInput, admission_errors
from router.store.aws import client
from router.store.campaigns import (
    CampaignQueue,
    CampaignsRepository,
    ManifestStore,
    RouteBatches,
    dumps_line,
    input_key,
    plan_key,
)
from router.store.errors import StaleWrite
from router.store.messages import MessageKind, WorkerMessage

logger = logging.getLogger(__name__)
StopCheck = Callable[[], bool]
MAX_RISKS_SHOWN = 100
_STATUS_BUCKET = {
    JobStatus.ACCEPTED: "accepted", JobStatus.ROUTED: "accepted", JobStatus.SUBMITTED: "running",
    JobStatus.RUNNING: "running", JobStatus.SUCCEEDED: "succeeded", JobStatus.FAILED: "failed",
    JobStatus.REJECTED: "rejected", JobStatus.EXPIRED: "expired", JobStatus.CANCELLED: "cancelled",
}


def _never() -> bool:
    return False


class CampaignSettings(BaseModel):
    queue_url: str | None = Field(default=None, alias="HVR_CAMPAIGNS_QUEUE_URL")
    chunk_lines: int = Field(default=500, ge=1, le=20_000, alias="HVR_CAMPAIGN_CHUNK_LINES")
    # Modelled seconds of work the GPU's queue may hold before more local campaign items are released to it.
    local_horizon_s: float = Field(default=7200.0, gt=0, alias="HVR_CAMPAIGN_LOCAL_HORIZON_S")
    pace_s: float = Field(default=30.0, gt=0, alias="HVR_CAMPAIGN_PACE_S")


@dataclass
class CampaignDeps:
    base: Deps
    campaigns: CampaignsRepository
    manifests: ManifestStore
    routes: RouteBatches
    steps: CampaignQueue | None
    settings: CampaignSettings

    @property
    def pace_delay_s(self) -> int:
        return max(1, round(self.settings.pace_s / self.base.time_scale))


def campaign_deps(base: Deps | None = None) -> CampaignDeps:
    """Built per call from the process's cached Deps and clients (cheap), reading the environment on use."""
    base = base or default_deps()
    settings = CampaignSettings.model_validate(dict(os.environ))
    endpoint = base.settings.aws_endpoint_url
    sqs = client("sqs", endpoint)
    return CampaignDeps(
        base=base,
        campaigns=CampaignsRepository(client("dynamodb", endpoint), base.settings.ledger_table),
        manifests=ManifestStore(client("s3", endpoint), base.settings.bucket),
        routes=RouteBatches(sqs, base.settings.jobs_queue_url),
        steps=CampaignQueue(sqs, settings.queue_url) if settings.queue_url else None,
        settings=settings,
    )


# --- entry points --------------------------------------------------------------------------------------------


def handle(parsed: CampaignMessage | list[ManifestDrop], cd: CampaignDeps, should_stop: StopCheck = _never) -> None:
    """One campaigns-queue message: a step of a campaign's chain, or S3's notice of dropped manifests."""
    if isinstance(parsed, CampaignMessage):
        run_step(parsed.tenant, parsed.campaign_id, parsed.step, cd, should_stop)
        return
    for drop in parsed:
        on_manifest(drop, cd, should_stop)


def submit(body: CampaignCreate, tenant: str, cd: CampaignDeps) -> tuple[CampaignView, bool]:
    """`POST /v1/campaigns`: the campaign (tenant, name) as the API shows it, and whether this call created it."""
    campaign, created = create(body, tenant, cd)
    return view(tenant, campaign.id, cd), created


def create(body: CampaignCreate, tenant: str, cd: CampaignDeps) -> tuple[Campaign, bool]:
    """The campaign (tenant, name), and whether this call created it. An existing campaign is returned as it is
    (no new jobs); one whose first step was never sent gets it sent."""
    cid = campaign_id(tenant, body.name)
    existing = cd.campaigns.find(tenant, cid)
    if existing is not None:
        _resend_if_stalled(existing.campaign, existing.next_sent, cd)
        return existing.campaign, False
    now = cd.base.clock()
    deadline = body.resolved_deadline(now)
    if deadline is not None and deadline <= now:
        raise InvalidInput([{"field": "deadline", "message": "must be in the future"}])
    overrides = body.spec().model_dump(mode="json", exclude_unset=True)
    if body.items is not None:
        payload = b"".join(dumps_line(item) for item in body.items)
        key = input_key(tenant, cid, hashlib.sha256(payload).hexdigest())
        cd.manifests.put(key, payload)  # content-addressed: a losing concurrent POST writes a key nobody reads
        campaign = Campaign(id=cid, tenant=tenant, name=body.name, overrides=overrides, created_at=now,
                            origin="inline", source_key=key)
    else:
        assert body.manifest is not None
        campaign = Campaign(id=cid, tenant=tenant, name=body.name, overrides=overrides, created_at=now,
                            origin=_checked_manifest_ref(body.manifest, tenant, cd))
    if not cd.campaigns.create(campaign):
        return cd.campaigns.get(tenant, cid), False
    _send_step(campaign, cd, delay_s=0)
    return campaign, True


def on_manifest(drop: ManifestDrop, cd: CampaignDeps, should_stop: StopCheck = _never) -> None:
    """A manifest dropped at `campaigns/<tenant>/<name>.jsonl`: the campaign (tenant, name) starts, unless it
    exists; then only a redelivery of the very upload it came from does anything (it resumes the chain)."""
    parts = manifest_key_parts(drop.key)
    if drop.bucket != cd.manifests.bucket or parts is None:
        logger.warning("ignoring s3://%s/%s: not campaigns/<tenant>/<name>.jsonl in our bucket", drop.bucket,
                       drop.key)
        return
    tenant, name = parts
    cid = campaign_id(tenant, name)
    origin = f"s3://{drop.bucket}/{drop.key}"
    existing = cd.campaigns.find(tenant, cid)
    if existing is None:
        campaign = Campaign(id=cid, tenant=tenant, name=name, created_at=cd.base.clock(), origin=origin,
                            origin_etag=drop.etag)
        if cd.campaigns.create(campaign):
            run_step(tenant, cid, 0, cd, should_stop)
            return
        existing = cd.campaigns.find(tenant, cid)
        assert existing is not None
    if existing.campaign.origin == origin and existing.campaign.origin_etag == drop.etag:
        run_step(tenant, cid, 0, cd, should_stop)  # the same upload again: a no-op unless its chain stalled
    else:
        logger.info("campaign %s (%s/%s) exists; the upload of %s creates no jobs", cid, tenant, name, origin)


def run_step(tenant: str, cid: str, step: int, cd: CampaignDeps, should_stop: StopCheck = _never) -> None:
    found = cd.campaigns.find(tenant, cid)
    if found is None:
        logger.warning("step %d of unknown campaign %s/%s dropped", step, tenant, cid)
        return
    campaign = found.campaign
    if step != campaign.step:
        if step < campaign.step:
            _resend_if_stalled(campaign, found.next_sent, cd)
        return
    if campaign.phase in (Phase.DONE, Phase.FAILED):
        return
    work = {Phase.OPEN: _open, Phase.INTAKE: _intake, Phase.PLAN: _plan, Phase.RELEASE: _release,
            Phase.PACE: _pace}[campaign.phase]
    updated = work(campaign, cd, should_stop)
    updated = updated.model_copy(update={"step": campaign.step + 1})
    if not cd.campaigns.advance(updated, expected_step=campaign.step):
        return  # another copy of this step moved the chain on, and sends the next message itself
    _send_step(updated, cd, delay_s=cd.pace_delay_s if campaign.phase is Phase.PACE else 0)


def resolve(tenant: str, id_or_name: str, cd: CampaignDeps) -> str:
    """The campaign id an API path names: its id, or else its name (a campaign is (tenant, name), so the id follows
    from the name without a lookup table). The id is tried first, since a name may look like an id; naming neither,
    it is given back as it came, so that the 404 names what the caller sent."""
    if cd.campaigns.exists(tenant, id_or_name) or not re.fullmatch(NAME_PATTERN, id_or_name):
        return id_or_name
    by_name = campaign_id(tenant, id_or_name)
    return by_name if cd.campaigns.exists(tenant, by_name) else id_or_name


def view(tenant: str, cid: str, cd: CampaignDeps) -> CampaignView:
    """The campaign as `GET /v1/campaigns/{id}` shows it: progress as of the last pace step (one read, whatever
    the campaign's size), the plan, and the invalid lines."""
    campaign = cd.campaigns.get(tenant, cid)
    progress = campaign.progress or Progress(as_of=campaign.created_at, counts=Counts(total=campaign.items))
    summary = campaign.plan
    invalid = cd.campaigns.invalid(tenant, cid)
    return CampaignView(
        id=campaign.id, name=campaign.name, status=campaign.status, created_at=campaign.created_at,
        deadline=campaign.deadline, budget_usd=campaign.spec.budget_usd, counts=progress.counts,
        invalid_items=invalid, invalid_items_total=campaign.invalid_entries, duplicates=campaign.duplicates,
        spent_usd=progress.spent_usd,
        projected_total_usd=progress.projected_total_usd if campaign.progress or summary is None
        else summary.planned_cost_usd,
        projected_finish_at=progress.projected_finish_at if campaign.progress or summary is None
        else summary.finish_at,
        offer_mix=progress.offer_mix, items_at_risk=progress.items_at_risk,
        items_at_risk_total=progress.items_at_risk_total, plan=summary,
        progress_as_of=campaign.progress.as_of if campaign.progress else None, error=campaign.error)


# --- the chain's plumbing ---------------------------------------------------------------------------------------


def _send_step(campaign: Campaign, cd: CampaignDeps, delay_s: int) -> None:
    if campaign.phase in (Phase.DONE, Phase.FAILED):
        return
    if cd.steps is None:
        raise RuntimeError("HVR_CAMPAIGNS_QUEUE_URL is not set: campaign steps can't be queued")
    cd.steps.send(CampaignMessage(tenant=campaign.tenant, campaign_id=campaign.id, step=campaign.step), delay_s)
    cd.campaigns.mark_sent(campaign.tenant, campaign.id, campaign.step)


def _resend_if_stalled(campaign: Campaign, next_sent: bool, cd: CampaignDeps) -> None:
    if not next_sent:
        _send_step(campaign, cd, delay_s=0)


def _failed(campaign: Campaign, error: str) -> Campaign:
    logger.warning("campaign %s failed: %s", campaign.id, error)
    return campaign.model_copy(update={"phase": Phase.FAILED, "error": error})


def _checked_manifest_ref(ref: str, tenant: str, cd: CampaignDeps) -> str:
    try:
        parts = urlsplit(ref)
    except ValueError:  # "s3://a[b/…": urlsplit takes the '[' for an unclosed IPv6 literal
        parts = urlsplit("s3:///")
    key = parts.path.lstrip("/")
    if parts.netloc != cd.manifests.bucket or not key.startswith(f"campaigns/{tenant}/"):
        raise InvalidInput([{"field": "manifest",
                             "message": f"must be s3://{cd.manifests.bucket}/campaigns/{tenant}/<name>.jsonl"}])
    return f"s3://{parts.netloc}/{key}"


# --- open: snapshot, header, budget ------------------------------------------------------------------------------


def _open(campaign: Campaign, cd: CampaignDeps, should_stop: StopCheck) -> Campaign:
    if campaign.source_key is None:
        origin_key = urlsplit(campaign.origin).path.lstrip("/")
        etag = campaign.origin_etag or cd.manifests.etag(origin_key)
        snapshot = input_key(campaign.tenant, campaign.id, etag or "missing")
        if etag is None or not cd.manifests.snapshot(origin_key, etag, snapshot):
            return _failed(campaign, f"manifest {campaign.origin} is missing, or changed after it was dropped")
        campaign = campaign.model_copy(update={"source_key": snapshot, "origin_etag": etag})
    assert campaign.source_key is not None
    header, header_end = None, 0
    for end, raw in cd.manifests.lines(campaign.source_key, 0):
        try:
            header = parse_header(raw)
        except ValueError as exc:
            return _failed(campaign, f"line 1: {exc}")
        header_end = end
        break
    if header is not None and header.name is not None and header.name != campaign.name:
        return _failed(campaign, f"line 1: campaign.name {header.name!r} is not the campaign's name {campaign.name!r}")
    fields = header.model_dump(mode="json", exclude_unset=True) if header is not None else {}
    if {"deadline", "deadline_s"} & set(campaign.overrides):
        fields.pop("deadline", None)
        fields.pop("deadline_s", None)
    try:
        spec = CampaignSpec.model_validate({**fields, **campaign.overrides, "name": campaign.name})
    except ValidationError as exc:
        return _failed(campaign, f"campaign: {field_errors(exc)[0]['message']}")
    _set_budget(campaign, spec, cd.base)
    return campaign.model_copy(update={
        "spec": spec, "deadline": spec.resolved_deadline(campaign.created_at), "phase": Phase.INTAKE,
        "cursor_line": 1 if header is not None else 0, "cursor_offset": header_end if header is not None else 0})


def _set_budget(campaign: Campaign, spec: CampaignSpec, deps: Deps) -> None:
    """The campaign's budget becomes the scope `campaign:<id>`, which every reservation of its jobs must fit."""
    if spec.budget_usd is None:
        return
    now = deps.clock()
    set_budget(deps, f"campaign:{campaign.id}", BudgetUpdate(limit_usd=spec.budget_usd), now,
               by=f"campaign:{campaign.id}")


# --- intake: lines → item rows and invalid lines --------------------------------------------------------------


def _intake(campaign: Campaign, cd: CampaignDeps, should_stop: StopCheck) -> Campaign:
    assert campaign.source_key is not None
    deps = cd.base
    now = deps.clock()
    context = _options_context(deps, campaign)
    line, offset = campaign.cursor_line, campaign.cursor_offset
    invalid: list[InvalidItem] = []
    valid: list[tuple[VideoRequest, PlanInput]] = []
    bad_lines, read, ended = 0, 0, True
    for end, raw in cd.manifests.lines(campaign.source_key, offset):
        line, offset, read = line + 1, end, read + 1
        parsed = parse_line(raw, line, campaign.id, campaign.spec, campaign.created_at)
        if parsed is not None and parsed.request is not None:
            parsed = _admitted(parsed, campaign, deps)
        if parsed is not None and parsed.errors:
            invalid += parsed.errors
            bad_lines += 1
        elif parsed is not None and parsed.request is not None:
            valid.append((parsed.request, _plan_input(parsed, campaign, context, deps, now)))
        if read >= cd.settings.chunk_lines or should_stop():
            ended = False
            break
    items = len(cd.campaigns.put_items(campaign.tenant, campaign.id, valid))
    duplicates = len(valid) - items  # lines whose item id an earlier line holds: they collapse into it
    cd.campaigns.put_invalid(campaign.tenant, campaign.id, invalid)
    return campaign.model_copy(update={
        "cursor_line": line, "cursor_offset": offset, "lines": line, "items": campaign.items + items,
        "duplicates": campaign.duplicates + duplicates, "invalid_lines": campaign.invalid_lines + bad_lines,
        "invalid_entries": campaign.invalid_entries + len(invalid),
        "phase": Phase.PLAN if ended else Phase.INTAKE})


def _admitted(parsed: ParsedLine, campaign: Campaign, deps: Deps) -> ParsedLine:
    """The line as admission judges it: the same check `POST /v1/jobs` makes, here before the item (and so its
    job) exists; a refusal becomes the line's field errors."""
    assert parsed.request is not None
    errors = admission_errors(parsed.request, campaign.tenant, deps, own_campaign=campaign.id)
    if not errors:
        return parsed
    return parsed.model_copy(update={"request": None, "errors": [
        InvalidItem(item_id=parsed.item_id, line=parsed.line, field=e["field"], message=e["message"])
        for e in errors]})


def _options_context(deps: Deps, campaign: Campaign) -> RoutingContext:
    return idle_local(routing_context(deps, tenant=campaign.tenant, campaign_id=campaign.id))


def _plan_input(parsed: ParsedLine, campaign: Campaign, context: RoutingContext, deps: Deps,
                now: datetime) -> PlanInput:
    request = parsed.request
    assert request is not None
    return item_input(request, deps.catalog.offers, context, now, request.deadline, parsed.item_id, parsed.line,
                      item_job_id(campaign.id, parsed.item_id))


# --- plan: the campaign as a whole --------------------------------------------------------------------------------


def _plan(campaign: Campaign, cd: CampaignDeps, should_stop: StopCheck) -> Campaign:
    deps = cd.base
    inputs = list(cd.campaigns.plan_inputs(campaign.tenant, campaign.id))
    result = plan(inputs, _params(campaign, deps))
    cd.manifests.put_plan(plan_key(campaign.tenant, campaign.id),
                          StoredPlan(summary=result.summary, entries=result.entries))
    return campaign.model_copy(update={"plan": result.summary, "phase": Phase.RELEASE, "release_index": 0})


def _params(campaign: Campaign, deps: Deps) -> PlanParams:
    now = deps.clock()
    up, gpu = _gpu(deps, now)
    return PlanParams(now=now, local_start=now + timedelta(seconds=gpu.queue_wait_s),
                      interactive_share=campaign.spec.interactive_share, budget_usd=_budget_left(campaign, deps),
                      local_available=up, queue=gpu.queue, slots=gpu.slots)


def _gpu(deps: Deps, now: datetime) -> tuple[bool, TargetState]:
    """Whether the local GPU can take work, and what it holds: the modelled seconds queued and the jobs. A fleet
    is planned as one pool (`fleet_pool`); the engine places each released item on a box."""
    provider = deps.providers.get(ProviderKind.LOCAL)
    if provider is None:
        return False, TargetState(name="local")
    if getattr(provider, "box_names", ()):
        boxes = routing_context(deps).boxes.get(ProviderKind.LOCAL, ())
        pool = fleet_pool(boxes)
        return pool.up, pool
    health = provider.health()
    circuits = deps.circuits.states(now)
    target = TargetState(name=health.name, queue_wait_s=health.queue_wait_s)
    if health.queue:  # priced in learned figures, as routing prices it (the agent's own are its catalog's)
        target = priced_queue(target, health, deps.catalog.offers,
                              learned_snapshot(deps, {ProviderKind.LOCAL: target}, {}), now)
    return health.up and circuits.get(health.name) is not Circuit.OPEN, target


def fleet_pool(boxes: Sequence[TargetState]) -> TargetState:
    """A fleet's boxes as the plan's one GPU: the boxes that take new work (up, circuit not open, not drained or
    silent in the registry), their slots summed and their queues, each priced at its own box's learned speed,
    merged in the agents' run order. Pooling treats a slot on a 3090 like one on a 5090 for the plan's capacity;
    the engine still places each released item on the box where it runs best, so the plan spreads held items across
    the boxes by holding as many as the whole fleet can take, not one box's worth."""
    taking = [box for box in boxes if box.up and box.circuit is not Circuit.OPEN]
    slots = sum(box.slots for box in taking)
    queue = localqueue.run_order([work for box in taking for work in box.queue])
    return TargetState(name="local", up=bool(taking), queue=queue, slots=max(slots, 1),
                       queue_wait_s=localqueue.wait_s(queue, None, max(slots, 1)))


def _budget_left(campaign: Campaign, deps: Deps) -> Decimal | None:
    if campaign.spec.budget_usd is None:
        return None
    scope = f"campaign:{campaign.id}"
    budget = deps.budgets.get_many([scope], period_of(deps.clock())).get(scope)
    return budget.remaining_usd if budget is not None else campaign.spec.budget_usd


# --- release: jobs for planned items ----------------------------------------------------------------------------


def _release(campaign: Campaign, cd: CampaignDeps, should_stop: StopCheck) -> Campaign:
    deps = cd.base
    key = plan_key(campaign.tenant, campaign.id)
    stored = cd.manifests.get_plan(key)
    start = campaign.release_index
    end = min(len(stored.entries), start + cd.settings.chunk_lines)
    up, gpu = _gpu(deps, deps.clock())
    queued_s = gpu.queue_wait_s
    room = cd.settings.local_horizon_s - queued_s - campaign.released_local_s
    released_local, held, chosen = 0.0, False, []
    for entry in stored.entries[start:end]:
        if entry.state is EntryState.UNFUNDED:
            continue
        if entry.local and entry.offer is not None:
            if entry.state is not EntryState.RELEASED and not (up and room > 0):
                entry.state, held = EntryState.HELD, True
                continue
            if entry.state is not EntryState.RELEASED:
                room -= entry.seconds
                released_local += entry.seconds
                entry.state, held = EntryState.RELEASED, True
        chosen.append(entry)
    if held:  # durable before the jobs exist, so a re-run never holds what it already released
        cd.manifests.put_plan(key, stored)
    _create_jobs(campaign, cd, chosen, stored)
    return campaign.model_copy(update={
        "release_index": end, "released_local_s": campaign.released_local_s + released_local,
        "phase": Phase.PACE if end >= len(stored.entries) else Phase.RELEASE})


def _create_jobs(campaign: Campaign, cd: CampaignDeps, entries: list[PlanEntry], stored: StoredPlan) -> None:
    if not entries:
        return
    deps = cd.base
    rows = cd.campaigns.items(campaign.tenant, campaign.id, [e.item_id for e in entries])
    now = deps.clock()
    messages = []
    for entry in entries:
        row = rows[entry.item_id]
        job = Job(id=entry.job_id, tenant=campaign.tenant, status=JobStatus.ACCEPTED, created_at=now, updated_at=now,
                  deadline=row.request.deadline, request=row.request,
                  routing=_planned_decision(entry, row.inputs, stored.summary.planned_at))
        try:
            deps.jobs.create(job)
        except StaleWrite:
            continue  # made by an earlier run of this step: it has its route message (or the sweeper's)
        messages.append(WorkerMessage(kind=MessageKind.ROUTE, tenant=campaign.tenant, job_id=job.id))
    cd.routes.send(messages)


def _planned_decision(entry: PlanEntry, inputs: PlanInput, planned_at: datetime) -> Decision | None:
    """The plan's choice, stored as the job's routing until the worker decides: the worker follows it while the
    engine still finds the offer feasible."""
    option = inputs.local if entry.local else inputs.cloud
    if entry.offer is None or option is None or option.offer != entry.offer or entry.finish is None:
        return None
    other = inputs.cloud if entry.local else inputs.local
    where = "the local GPU" if entry.local else "the cloud"
    note = f"; {other.offer} would cost ${other.cost_usd}" if other is not None else ""
    chosen = Chosen(
        offer=option.offer, provider=option.provider, target=option.target, estimated_cost_usd=option.cost_usd,
        estimated_cost_p90_usd=option.cost_p90_usd, estimated_ready_at=entry.finish, score=option.score,
        delivered=option.delivered,
        reason=f"{PLAN_REASON}: {where}, start {iso(entry.start or planned_at)}, p90 ready {iso(entry.finish)}{note}")
    return Decision(chosen=chosen, fallbacks=[other.offer] if other is not None else [], candidates=[], reasons=[],
                    decided_at=planned_at)


# --- pace: release held items, re-plan them, refresh progress -------------------------------------------------


def _pace(campaign: Campaign, cd: CampaignDeps, should_stop: StopCheck) -> Campaign:
    key = plan_key(campaign.tenant, campaign.id)
    stored = cd.manifests.get_plan(key)
    waiting = [e for e in stored.entries if e.state in (EntryState.HELD, EntryState.UNFUNDED)]
    if waiting:
        idle = campaign.progress is not None and campaign.progress.active_jobs == 0
        released = _replan_waiting(campaign, cd, stored, waiting, idle)
        cd.manifests.put_plan(key, stored)
        _create_jobs(campaign, cd, released, stored)
    progress = _progress(campaign, cd, stored)
    done = progress.active_jobs == 0 and progress.waiting_items == 0
    return campaign.model_copy(update={"progress": progress, "plan": stored.summary,
                                       "phase": Phase.DONE if done else Phase.PACE})


def _replan_waiting(campaign: Campaign, cd: CampaignDeps, stored: StoredPlan, waiting: list[PlanEntry],
                    idle: bool) -> list[PlanEntry]:
    """Re-plan the items not yet released, against the GPU's queue and health now and the budget left; release
    what should go now. Once nothing is running, items still waiting for budget are released too, so the money
    layer refuses them by name instead of the campaign waiting forever."""
    deps = cd.base
    rows = cd.campaigns.items(campaign.tenant, campaign.id, [e.item_id for e in waiting])
    inputs = [rows[e.item_id].inputs for e in waiting if e.item_id in rows]
    params = _params(campaign, deps)
    result = plan(inputs, params)
    room = cd.settings.local_horizon_s - (params.local_start - params.now).total_seconds()
    deadlines = {i.item_id: i.deadline for i in inputs}
    released: list[PlanEntry] = []
    for entry in result.entries:
        deadline = deadlines[entry.item_id]
        overdue = deadline is not None and deadline <= params.now
        if entry.state is EntryState.UNFUNDED and not idle and not overdue:
            continue
        if entry.local and entry.offer is not None and not overdue and entry.state is not EntryState.UNFUNDED:
            if not (params.local_available and room > 0):
                entry.state = EntryState.HELD
                continue
            room -= entry.seconds
        entry.state = EntryState.RELEASED
        released.append(entry)
    by_id = {e.item_id: e for e in result.entries}
    stored.entries = [by_id.get(e.item_id, e) for e in stored.entries]
    stored.summary = stored.summary.model_copy(update={"replans": stored.summary.replans + 1})
    return released


def _progress(campaign: Campaign, cd: CampaignDeps, stored: StoredPlan) -> Progress:
    """Counts, spend, projections and risks from the campaign's jobs (one paged query) and the items the plan
    still holds."""
    deps = cd.base
    now = deps.clock()
    item_of = {e.job_id: e.item_id for e in stored.entries}
    counts: dict[str, int] = {}
    spent, pending_cost = Decimal(0), Decimal(0)
    finish: datetime | None = None
    mix: dict[str, int] = {}
    risks: list[ItemAtRisk] = []
    seen: set[str] = set()
    active = 0
    cursor: dict[str, Any] | None = None
    while True:
        jobs, cursor = deps.jobs.list(campaign.tenant, campaign_id=campaign.id, limit=500, cursor=cursor)
        for job in jobs:
            seen.add(job.id)
            bucket = _STATUS_BUCKET[job.status]
            counts[bucket] = counts.get(bucket, 0) + 1
            spent += job.cost.actual_usd
            offer = _job_offer(job)
            mix[offer] = mix.get(offer, 0) + 1
            ready = job.routing.chosen.estimated_ready_at if job.routing and job.routing.chosen else None
            if job.status.terminal:
                finish = _later(finish, job.updated_at)
                continue
            active += 1
            pending_cost += _remaining_estimate(job)
            finish = _later(finish, ready)
            if job.deadline is not None and ready is not None and ready > job.deadline:
                risks.append(ItemAtRisk(item_id=item_of.get(job.id, job.id), job_id=job.id, offer=offer,
                                        projected_finish_at=ready, reason="p90 ready after the deadline"))
        if cursor is None:
            break
    waiting = [e for e in stored.entries if e.state in (EntryState.HELD, EntryState.UNFUNDED) and e.job_id not in seen]
    for entry in waiting:
        counts["accepted"] = counts.get("accepted", 0) + 1
        mix[entry.offer or "unplanned"] = mix.get(entry.offer or "unplanned", 0) + 1
        pending_cost += entry.cost_usd
        finish = _later(finish, entry.finish)
        if entry.risk:
            risks.append(ItemAtRisk(item_id=entry.item_id, job_id=entry.job_id, offer=entry.offer,
                                    projected_finish_at=entry.finish, reason=entry.risk))
    return Progress(as_of=now, counts=Counts(total=campaign.items, **counts), spent_usd=money(spent),
                    projected_total_usd=money(spent + pending_cost), projected_finish_at=finish, offer_mix=mix,
                    items_at_risk=risks[:MAX_RISKS_SHOWN], items_at_risk_total=len(risks), active_jobs=active,
                    waiting_items=len(waiting))


def _job_offer(job: Job) -> str:
    if job.current_attempt is not None:
        return job.current_attempt.offer
    if job.routing is not None and job.routing.chosen is not None:
        return job.routing.chosen.offer
    return "unrouted"


def _remaining_estimate(job: Job) -> Decimal:
    attempt = job.current_attempt
    if attempt is not None and not attempt.status.ended:
        return attempt.estimated_cost_usd
    if job.routing is not None and job.routing.chosen is not None:
        return job.routing.chosen.estimated_cost_usd
    return Decimal(0)


def _later(current: datetime | None, other: datetime | None) -> datetime | None:
    if other is None:
        return current
    return other if current is None or other > current else current
