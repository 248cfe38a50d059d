"""SNS → spend modes: AWS Budgets notifications and hvr's own threshold alerts (deduplicated on MessageId)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from router.services.budget_alerts import apply, parse
from router.services.deps import default_deps

logger = Logger(service="hvr-budget-alerts")
DEDUPE_S = 14 * 24 * 3600


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    deps = default_deps()
    now = deps.clock()
    applied = []
    for record in event.get("Records", []):
        sns = record.get("Sns") or {}
        message_id = str(sns.get("MessageId", ""))
        if message_id and not deps.nonces.first_seen(
                "sns", message_id, int(now.timestamp()) + DEDUPE_S):
            continue
        notice = parse(str(sns.get("Message", "")))
        if notice is None:
            logger.warning("not a budget notification we understand", message_id=message_id)
            continue
        mode = apply(notice, deps, now)
        applied.append({"scope": notice.scope, "mode": mode.value if mode else None})
        logger.info("budget notice", scope=notice.scope, fraction=notice.fraction, mode=mode)
    return {"applied": applied}
