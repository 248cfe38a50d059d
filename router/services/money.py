"""Money: reserve before a provider is paid, settle exactly once after, alert on thresholds, move spend modes.

estimate (p90) → reserve in every applicable scope at once → submit → attempt ends → settle (the true cost, even
past the limit) and write the ledger row. Settling is guarded by the reservation's state and the ledger row by
the attempt id, so crashes and duplicate deliveries can repeat any step without charging twice.

What a scope spent in a period is what the ledger says (`spent`): a budget's `spent_usd` is a counter kept beside
it for the conditional writes, started from the ledger's figure when the budget is made, and checked against the
ledger daily (`drift`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from router.models.budget import Budget, BudgetAlert, BudgetUpdate, SpendMode, period_of, scopes_for
from router.models.common import iso
from router.models.ledger import LedgerEntry
from router.policy.context import BudgetState
from router.services.deps import Deps
from router.store.budgets import BudgetRefused
from router.store.ledger import spent_in

logger = logging.getLogger(__name__)
DEFAULT_SPEND_RULES = "0.8=economy,1.0=local_only"

__all__ = ["BudgetRefused", "budget_states", "charge", "reserve", "spend_rules"]


def tenant_sees(tenant: str, scope: str, deps: Deps) -> bool:
    """Whether a member key of `tenant` may read a budget scope (its budget, its alerts): its own tenant's and its
    own campaigns', never the global one or another tenant's, which say what others spend."""
    kind, _, name = scope.partition(":")
    return (kind == "tenant" and name == tenant) or (kind == "campaign" and deps.campaigns.exists(tenant, name))


def spend_rules(spec: str | None) -> list[tuple[float, SpendMode]]:
    """`0.8=economy,1.0=local_only` → [(0.8, ECONOMY), (1.0, LOCAL_ONLY)]: thresholds that move a scope's mode."""
    rules = []
    for part in filter(None, (p.strip() for p in (spec or DEFAULT_SPEND_RULES).split(","))):
        threshold, _, mode = part.partition("=")
        rules.append((float(threshold), SpendMode(mode.strip())))
    return sorted(rules)


def budget_states(deps: Deps, tenant: str, campaign_id: str | None, now: datetime) -> tuple[BudgetState, ...]:
    """The budgets that apply to a request, for the policy; scopes without a budget are unlimited."""
    found = deps.budgets.get_many(scopes_for(tenant, campaign_id), period_of(now))
    return tuple(BudgetState(scope=b.scope, remaining_usd=b.remaining_usd, spend_mode=b.spend_mode)
                 for b in found.values())


def reserve(deps: Deps, tenant: str, campaign_id: str | None, job_id: str, attempt_id: str, estimate: Decimal,
            now: datetime) -> None:
    """Hold the attempt's p90 estimate in every budget that applies; BudgetRefused names the scope that refused."""
    period = period_of(now)
    present = list(deps.budgets.get_many(scopes_for(tenant, campaign_id), period))
    if present:
        deps.budgets.reserve(tenant, job_id, attempt_id, period, present, estimate, now)


def charge(deps: Deps, entry: LedgerEntry) -> None:
    """Settle the attempt's reservation with its actual cost, then write its ledger row (each at most once).

    The cost counts in the period the attempt ended in, as the ledger counts it. Budgets of that period that held
    nothing for it — made after it reserved, or it reserved in the month before — count it once its row is
    written; a hold from an earlier period is only released."""
    period = period_of(entry.ended_at)
    reservation = deps.budgets.reservation(entry.attempt_id)
    held_here = reservation is not None and reservation.period == period
    settled_here = reservation is not None and reservation.state == "reserved" and deps.budgets.settle(
        reservation, entry.actual_usd, spent_here=held_here)
    counted = list(reservation.scopes) if reservation is not None and held_here else []
    if deps.ledger.record(entry):
        deps.exports.write(entry)
        if counted and not settled_here:
            _count_what_the_hold_missed(deps, entry, counted, period)
        unheld = [scope for scope in deps.budgets.get_many(scopes_for(entry.tenant, entry.campaign_id), period)
                  if scope not in counted]
        counted += [scope for scope in unheld if deps.budgets.add_spent(scope, period, entry.actual_usd)]
    if counted:
        _thresholds(deps, counted, period, entry.ended_at)


def _count_what_the_hold_missed(deps: Deps, entry: LedgerEntry, scopes: list[str], period: str) -> None:
    """This row is the attempt's first, but its hold was settled before it: by a duplicate charge of the same row
    (at this actual: nothing is missing) or by the reaper, which found no row and released it at nothing. The
    budgets would then count the render nowhere, so what the settlement left out is counted now."""
    settled = deps.budgets.reservation(entry.attempt_id)
    missing = entry.actual_usd - (settled.actual if settled is not None and settled.actual is not None else Decimal(0))
    if missing > 0:
        for scope in scopes:
            deps.budgets.add_spent(scope, period, missing)


def release_stale(deps: Deps, older_than: datetime) -> int:
    """The reaper: reservations whose attempt ended without settling (a crash) are settled from the ledger row,
    or released at zero when none was written — a leaked hold must never block real work."""
    from router.store.errors import NotFound

    released = 0
    for reservation in deps.budgets.stale_reservations(older_than):
        try:
            job = deps.jobs.get(reservation.tenant, reservation.job_id)
        except NotFound:
            job = None
        attempt = next((a for a in job.attempts if a.id == reservation.attempt_id), None) if job else None
        if job is not None and attempt is not None and not attempt.status.ended and (
                not job.status.terminal or attempt.settle_as is not None):
            continue  # still rendering, or still to be billed once its provider answers: its hold is real
        actual = deps.ledger.actual(reservation.tenant, reservation.job_id, reservation.attempt_id)
        if deps.budgets.settle(reservation, actual if actual is not None else Decimal(0)):
            released += 1
    return released


def _thresholds(deps: Deps, scopes: list[str], period: str, now: datetime) -> None:
    rules = spend_rules(deps.settings.spend_rules)
    for budget in deps.budgets.get_many(scopes, period).values():
        if budget.limit_usd <= 0:
            continue
        used = (budget.spent_usd / budget.limit_usd)
        # The mode moves before the threshold alerts go out: hvr's own alerts come back to budget_alerts over SNS,
        # which then finds the mode moved already instead of moving (and recording) it a second time.
        target = max((mode for t, mode in rules if used >= Decimal(str(t))), key=lambda m: m.rank, default=None)
        if target is not None and target.rank > budget.spend_mode.rank:
            source = f"threshold {used:.0%} of limit"
            if deps.budgets.set_mode(budget.scope, budget.period, target, source, now):
                rule = next(t for t, mode in rules if mode is target and used >= Decimal(str(t)))
                record_mode_move(deps, budget, target, rule, source, now)
        for threshold in budget.thresholds:
            if used >= Decimal(str(threshold)) and deps.budgets.claim_alert(budget.scope, budget.period, threshold):
                _alert(deps, budget, threshold, used, now)


def _alert(deps: Deps, budget: Budget, threshold: float, used: Decimal, now: datetime) -> None:
    scope, period = budget.scope, budget.period
    figures = budget.model_dump(mode="json")
    message = {"type": "budget.threshold", "scope": scope, "period": period, "threshold": threshold,
               "limit_usd": figures["limit_usd"], "spent_usd": figures["spent_usd"],
               "reserved_usd": figures["reserved_usd"], "at": iso(now),
               "top_offers": deps.ledger.top_offers(scope, period)}
    logger.warning("budget %s crossed %s of its %s limit", scope, threshold, period)
    deps.alerts.publish(json.dumps(message), subject=f"hvr budget {scope} {period} at {threshold:.0%}")
    # After the publish: claim_alert has made this the one chance, and the page matters more than the history.
    deps.alert_history.record(BudgetAlert(
        scope=scope, period=period, kind="threshold", threshold=threshold, spent_usd=budget.spent_usd,
        limit_usd=budget.limit_usd, at=now, source=f"threshold {threshold:.0%} of limit ({used:.0%} spent)"))


def record_mode_move(deps: Deps, budget: Budget, mode: SpendMode, rule: float, source: str, now: datetime) -> None:
    """The history's record of a spend mode a rule moved (here, or on a budget notice), with the figures it saw."""
    logger.warning("budget %s %s: spend mode %s (%s)", budget.scope, budget.period, mode.value, source)
    deps.alert_history.record(BudgetAlert(
        scope=budget.scope, period=budget.period, kind="spend_mode", threshold=rule, spent_usd=budget.spent_usd,
        limit_usd=budget.limit_usd, mode=mode, at=now, source=source))


def spent(deps: Deps, scopes: list[str], period: str) -> dict[str, Decimal]:
    """What each scope spent in the period, by the ledger (one read of the period's rows for all of them)."""
    rows = deps.ledger.for_period(period)
    return {scope: spent_in(rows, scope) for scope in scopes}


def set_budget(deps: Deps, scope: str, update: BudgetUpdate, now: datetime, by: str) -> Budget:
    """Create or change this period's budget of a scope; a new one counts what the scope already spent."""
    period = period_of(now)
    existing = deps.budgets.get_many([scope], period)
    before = Decimal(0) if scope in existing else spent(deps, [scope], period)[scope]
    return deps.budgets.put(scope, period, update, now, by, spent_before=before)


def roll_over(deps: Deps, now: datetime) -> int:
    """Start the new calendar month: every budget of the last period gets this period's item, counting what the
    ledger already has for the month (attempts that ended before the sweeper ran), and its spend mode relaxed to
    normal — except a `paused` set by hand, which a person must lift."""
    period = period_of(now)
    previous = period_of(now.replace(day=1) - timedelta(days=1))
    current = {b.scope for b in deps.budgets.for_period(period)}
    to_start = [budget for budget in deps.budgets.for_period(previous) if budget.scope not in current]
    if not to_start:
        return 0
    already = spent(deps, [budget.scope for budget in to_start], period)
    for budget in to_start:
        manual_pause = budget.spend_mode is SpendMode.PAUSED and (budget.spend_mode_changed_by or "").startswith("api:")
        update = BudgetUpdate(limit_usd=budget.limit_usd, thresholds=budget.thresholds,
                              spend_mode=SpendMode.PAUSED if manual_pause else SpendMode.NORMAL)
        deps.budgets.put(budget.scope, period, update, now, by="rollover", spent_before=already[budget.scope])
    return len(to_start)


@dataclass(frozen=True)
class Drift:
    """A budget whose spend counter disagrees with the ledger."""

    scope: str
    period: str
    budget_spent_usd: Decimal
    ledger_spent_usd: Decimal


def drift(deps: Deps, period: str) -> list[Drift]:
    """Every budget of the period whose `spent_usd` is not the ledger's figure. An attempt settling right now can
    show for a moment (settle comes before its ledger row); one found again on the next check is real."""
    budgets = deps.budgets.for_period(period)
    ledger = spent(deps, [budget.scope for budget in budgets], period)
    return [Drift(b.scope, period, b.spent_usd, ledger[b.scope]) for b in budgets if b.spent_usd != ledger[b.scope]]


def report_drift(deps: Deps, now: datetime) -> list[Drift]:
    """The daily check: log and alert every budget whose counter left the ledger's figure this period."""
    found = drift(deps, period_of(now))
    for d in found:
        logger.error("budget %s %s counts %s spent, the ledger %s", d.scope, d.period, d.budget_spent_usd,
                     d.ledger_spent_usd)
    if found:
        message = {"type": "budget.drift", "at": iso(now),
                   "budgets": [{"scope": d.scope, "period": d.period, "budget_spent_usd": str(d.budget_spent_usd),
                                "ledger_spent_usd": str(d.ledger_spent_usd)} for d in found]}
        deps.alerts.publish(json.dumps(message), subject=f"hvr budget drift in {len(found)} budget(s)")
    return found
