"""Scheduled sweeper: nudges quiet jobs (deadline expiry, lost messages, crashed submissions)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from router.observability import metrics
from router.services.deps import default_deps
from router.services.sweeper import sweep

logger = Logger(service="hvr-sweeper")


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = sweep(default_deps())
    logger.info("swept", looked_at=report.looked_at, nudged=report.nudged)
    return {"looked_at": report.looked_at, "nudged": report.nudged}
