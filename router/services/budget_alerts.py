"""Budget notifications → spend modes. AWS Budgets' SNS text has no published schema, so it is parsed
defensively (docs/architecture.md, "Money"); hvr's own threshold alerts are JSON. Either moves a scope's spend
mode by the rules in config, never relaxing it (relaxing happens at period rollover or by hand), recording who and when.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from router.models.budget import SCOPE_PATTERN, SpendMode, period_of
from router.services.deps import Deps
from router.services.money import record_mode_move, spend_rules

# AWS budget names map to scopes: `hvr-global`, `hvr-tenant-acme`, `hvr-campaign-bf2026`.
_NAME = re.compile(r"Budget Name:\s*(?P<name>[^\s]+)", re.IGNORECASE)
_THRESHOLD = re.compile(r"Alert Threshold:\s*>\s*\$?(?P<value>[\d.,]+)\s*(?P<unit>%)?", re.IGNORECASE)
_BUDGETED = re.compile(r"Budgeted Amount:\s*\$?(?P<value>[\d.,]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Notice:
    scope: str
    fraction: float  # of the limit
    source: str


def parse(message: str) -> Notice | None:
    """A notice from an SNS message body, or None if it isn't one we understand (logged, never raised)."""
    try:
        data = json.loads(message)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("type") == "budget.threshold":
        scope, threshold = str(data.get("scope", "")), data.get("threshold")
        if SCOPE_PATTERN.match(scope) and isinstance(threshold, int | float):
            return Notice(scope, float(threshold), f"hvr threshold {threshold:.0%}")
        return None
    return _parse_aws_budgets(message)


def _parse_aws_budgets(text: str) -> Notice | None:
    name, threshold = _NAME.search(text), _THRESHOLD.search(text)
    if not name or not threshold:
        return None
    scope = _scope_from_budget_name(name["name"])
    if scope is None:
        return None
    value = float(threshold["value"].replace(",", ""))
    if threshold["unit"] == "%":
        fraction = value / 100
    else:
        budgeted = _BUDGETED.search(text)
        if not budgeted:
            return None
        fraction = value / float(budgeted["value"].replace(",", ""))
    return Notice(scope, fraction, f"aws-budgets {name['name']} at {fraction:.0%}")


def _scope_from_budget_name(name: str) -> str | None:
    if not name.startswith("hvr-"):
        return None
    rest = name.removeprefix("hvr-")
    scope = "global" if rest == "global" else rest.replace("-", ":", 1)
    return scope if SCOPE_PATTERN.match(scope) else None


def apply(notice: Notice, deps: Deps, now: datetime) -> SpendMode | None:
    """Move the scope's mode to the most restrictive rule the notice reaches; the new mode, or None."""
    rules = spend_rules(deps.settings.spend_rules)
    target = max((mode for t, mode in rules if notice.fraction >= t), key=lambda m: m.rank, default=None)
    if target is None:
        return None
    period = period_of(now)
    current = deps.budgets.get_many([notice.scope], period).get(notice.scope)
    if current is None or current.spend_mode.rank >= target.rank:
        return None
    if deps.budgets.set_mode(notice.scope, period, target, notice.source, now):
        rule = next(t for t, mode in rules if mode is target and notice.fraction >= t)
        record_mode_move(deps, current, target, rule, notice.source, now)
    return target
