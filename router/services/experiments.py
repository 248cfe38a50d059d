"""A/B experiments: defining them, steering a job's first route to its arm, paired twins, and results
(docs/architecture.md, "Experiments").

The route step calls `steer` on a job's first decision. Among the running experiments (by name), the first that
takes the request (router.policy.experiments.place) and whose spend cap holds the render's p90 estimate (both
renders of a pair) assigns it; the assignment is stored with the experiment and recorded on the job with its first
attempt. A paired experiment's twin is a job of the same tenant rendering the same request on the other arm, made
once the deciding job's money is held; it never calls the client back and never spends a campaign's budget.

A job that falls back after its arm's attempt failed leaves the arm; a twin never does: it only renders on its
arm, or ends saying why. Results count a job in its arm by its assignment (intention to treat): its failures too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel

from router.errors import CONTRACT, Conflict, InvalidRequest
from router.models.common import Money
from router.models.decision import Decision
from router.models.experiment import (
    AssignedJob,
    Experiment,
    ExperimentAssignment,
    ExperimentSpec,
    ExperimentState,
)
from router.models.job import AttemptStatus, Job, JobStatus
from router.models.rating import Rating
from router.policy.context import RoutingContext
from router.policy.experiment_results import ArmSample, ExperimentResults, results
from router.policy.experiments import ARMS, arm_errors, arm_offers, keep_to_arm, place, unit_of
from router.services.deps import Deps
from router.store.errors import NotFound, StaleWrite
from router.store.experiments import CapReached
from router.store.messages import MessageKind, WorkerMessage

TWIN_SUFFIX = "-pair"


class ExperimentView(BaseModel):
    """`GET /v1/experiments/{name}`: the definition, what it committed, and (on one experiment) its results."""

    experiment: Experiment
    status: str  # running, cap_reached, ended
    assigned: int
    committed_usd: Money
    offers: dict[str, list[str]]  # arm → the catalog offers it holds now
    results: ExperimentResults | None = None
    routed_elsewhere: int = 0  # assigned, but the arm's offer stopped being feasible before the job's first attempt


class ExperimentList(BaseModel):
    experiments: list[ExperimentView]


def define(name: str, spec: ExperimentSpec, deps: Deps, by: str) -> tuple[ExperimentView, bool]:
    """Create or redefine an experiment; True when created. Arms and stickiness can't change once jobs are
    assigned: the assigned jobs would stop meaning what the results say."""
    errors = arm_errors(spec.arms, deps.catalog.offers)
    now = deps.clock()
    if errors:
        raise InvalidRequest("; ".join(errors), detail=CONTRACT,
                             errors=[{"field": e.partition(":")[0], "message": e.partition(": ")[2]} for e in errors])
    current = deps.experiments.get(name)
    if current is not None and current.assigned and (
            current.experiment.arms != spec.arms or current.experiment.stickiness != spec.stickiness):
        raise Conflict(f"experiment {name} has assigned {current.assigned} jobs: its arms and stickiness are fixed",
                       errors=[{"field": "arms", "message": "can't change once jobs are assigned"}])
    experiment = Experiment(**spec.model_dump(), name=name, created_by=by, updated_at=now,
                            created_at=current.experiment.created_at if current else now)
    state = deps.experiments.define(experiment, current.version if current else None)
    return _view(state, deps, now), current is None


def listing(deps: Deps) -> ExperimentList:
    now = deps.clock()
    return ExperimentList(experiments=[_view(state, deps, now) for state in deps.experiments.all()])


def _view(state: ExperimentState, deps: Deps, now: datetime) -> ExperimentView:
    offers = {arm: sorted(arm_offers(spec, deps.catalog.offers))
              for arm, spec in zip(ARMS, state.experiment.arms, strict=True)}
    return ExperimentView(experiment=state.experiment, status=state.status(now), assigned=state.assigned,
                          committed_usd=state.committed_usd, offers=offers)


# --- routing ------------------------------------------------------------------------------------------------------


def steer(job: Job, decision: Decision, context: RoutingContext,
          deps: Deps) -> tuple[Decision, ExperimentAssignment | None]:
    """The decision for this route of `job`, with the experiment that takes it (if any) applied."""
    mine = job.experiment
    if mine is not None and mine.twin:
        kept = keep_to_arm(decision, mine.name, mine.arm, mine.arm_spec, deps.catalog.offers, context)
        if kept is None:
            why = f"experiment {mine.name}'s twin: arm {mine.arm} ({mine.arm_spec}) has no feasible offer left"
            return Decision(chosen=None, fallbacks=[], candidates=decision.candidates,
                            reasons=[why, *decision.reasons], decided_at=decision.decided_at), mine
        return kept, mine
    if job.attempts or decision.chosen is None:
        return decision, None  # a fallback hop goes wherever the engine says: the client wants a video
    now = deps.clock()
    for state in deps.experiments.all():
        experiment = state.experiment
        if state.status(now) != "running":
            continue
        unit = unit_of(experiment.stickiness, job.tenant, job.request.campaign_id, job.id)
        placed = place(decision, experiment, unit, deps.catalog.offers, context)
        if placed is None:
            continue
        other = "b" if placed.arm == "a" else "a"
        cost = placed.mine.estimated_cost_p90_usd or Decimal(0)
        assigned = [AssignedJob(tenant=job.tenant, job_id=job.id, arm=placed.arm, assigned_at=now)]
        if experiment.paired:
            cost += placed.other.estimated_cost_p90_usd or Decimal(0)
            assigned.append(AssignedJob(tenant=job.tenant, job_id=twin_id(job.id), arm=other, twin=True,
                                        assigned_at=now))
        try:
            stored = deps.experiments.assign(experiment.name, assigned, cost, experiment.spend_cap_usd)
        except CapReached:
            continue
        if stored.arm != placed.arm:  # an earlier copy of this route drew before the experiment was redefined
            continue
        return placed.decision, ExperimentAssignment(
            name=experiment.name, arm=placed.arm, arm_spec=experiment.arms[ARMS.index(placed.arm)], unit=unit,
            paired_with=twin_id(job.id) if experiment.paired else None)
    return decision, None


def twin_id(job_id: str) -> str:
    return f"{job_id}{TWIN_SUFFIX}"


def start_twin(job: Job, assignment: ExperimentAssignment, deps: Deps) -> None:
    """The pair's other render, as a job of its own routed to the other arm. Idempotent: a redelivered route
    finds the twin made and only queues its route again (a duplicate route is a no-op)."""
    if assignment.twin or assignment.paired_with is None:
        return
    state = deps.experiments.get(assignment.name)
    if state is None:
        return
    other = "b" if assignment.arm == "a" else "a"
    now = deps.clock()
    twin = Job(id=assignment.paired_with, tenant=job.tenant, status=JobStatus.ACCEPTED, created_at=now,
               updated_at=now, deadline=job.deadline,
               request=job.request.model_copy(update={"callback_url": None, "campaign_id": None}),
               experiment=ExperimentAssignment(name=assignment.name, arm=other,
                                               arm_spec=state.experiment.arms[ARMS.index(other)],
                                               unit=assignment.unit, paired_with=job.id, twin=True))
    with contextlib.suppress(StaleWrite):  # made by an earlier copy of this route
        deps.jobs.create(twin)
    deps.queue.send(WorkerMessage(kind=MessageKind.ROUTE, tenant=job.tenant, job_id=twin.id))


# --- results ------------------------------------------------------------------------------------------------------


def view(name: str, deps: Deps) -> ExperimentView:
    state = deps.experiments.get(name)
    if state is None:
        raise NotFound(f"experiment {name} not found")
    now = deps.clock()
    found = _view(state, deps, now)
    jobs: list[Job] = []
    elsewhere = 0
    for assigned in deps.experiments.jobs(name):
        try:
            job = deps.jobs.get(assigned.tenant, assigned.job_id)
        except NotFound:  # a twin not made yet (its pair's route is on its way), or nothing to read
            continue
        if job.experiment is None or job.experiment.name != name:
            elsewhere += job.status is not JobStatus.ACCEPTED
            continue
        jobs.append(job)
    ratings = deps.ratings.between(state.experiment.created_at.date(), now.date()) if jobs else []
    found.results = results_of(jobs, ratings, state.experiment)
    found.routed_elsewhere = elsewhere
    return found


def results_of(jobs: Sequence[Job], ratings: Sequence[Rating], experiment: Experiment) -> ExperimentResults:
    """The experiment's results from its jobs and the ratings of them (pure: the simulator calls it too)."""
    arm_of = {(job.tenant, job.id): job.experiment.arm for job in jobs if job.experiment is not None}
    samples = []
    for arm, spec in zip(ARMS, experiment.arms, strict=True):
        mine = [job for job in jobs if arm_of.get((job.tenant, job.id)) == arm]
        ended = [job for job in mine if job.status.terminal and job.status is not JobStatus.CANCELLED]
        delivered = [job for job in ended if job.status is JobStatus.SUCCEEDED]
        samples.append(ArmSample(
            name=arm, arm=spec, assigned=len(mine), ended=len(ended),
            failed=len(ended) - len(delivered),
            scores=[r.score for r in ratings if arm_of.get((r.tenant, r.job_id)) == arm],
            costs_usd=[job.total_actual() for job in ended], delivered=len(delivered),
            turnarounds_s=[(_delivered_at(job) - job.created_at).total_seconds() for job in delivered]))
    preferred = {"a": 0, "b": 0}
    for rating in ratings:
        winner = arm_of.get((rating.tenant, rating.job_id))
        loser = arm_of.get((rating.tenant, rating.preferred_over)) if rating.preferred_over else None
        if winner is not None and loser is not None and winner != loser:
            preferred[winner] += 1
    return results(samples[0], samples[1], preferred["a"], preferred["b"])


def _delivered_at(job: Job) -> datetime:
    last = next((a for a in reversed(job.attempts) if a.status is AttemptStatus.SUCCEEDED), None)
    return (last.ended_at if last is not None and last.ended_at is not None else None) or job.updated_at
