"""Scheduled sweeper: nudges quiet jobs (deadline expiry, lost messages, crashed submissions) every minute, and once a
day (its `Daily` rule's input, `{"task": "daily"}`) checks the books."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from router.observability import metrics
from router.services.deps import default_deps
from router.services.sweeper import daily, sweep

logger = Logger(service="hvr-sweeper")


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("task") == "daily":
        books = daily(default_deps())
        drift = [{"scope": d.scope, "budget": str(d.budget_spent_usd), "ledger": str(d.ledger_spent_usd)}
                 for d in books.drift]
        found = books.reconciliation.model_dump(mode="json", exclude={"findings"})
        logger.info("daily checks", drift=drift, reconciliation=found)
        return {"drift": drift, "reconciliation": found}
    report = sweep(default_deps())
    logger.info("swept", looked_at=report.looked_at, nudged=report.nudged)
    return {"looked_at": report.looked_at, "nudged": report.nudged}
