"""Campaigns-queue consumer: S3 notices of dropped manifests and the campaigns' own step messages.

One SQS batch in, partial batch failures out. S3's `s3:TestEvent` (sent when the notification is configured) is
skipped; a record that fails comes back after the visibility timeout and, five receives on, goes to the DLQ.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from router.models.campaign_queue import parse_queue_body
from router.observability import metrics
from router.services.campaigns import campaign_deps, handle

logger = Logger(service="hvr-campaigns")
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
# A step stops taking lines with this much of the invocation left, so it always has time to record its progress.
RESERVE_MS = 30_000


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    # The clock starts when the record does: the remaining time is read once, then counted down locally.
    ends_at = time.monotonic() + (lambda_context.get_remaining_time_in_millis() - RESERVE_MS) / 1000
    handle(parse_queue_body(record.body), campaign_deps(), should_stop=lambda: time.monotonic() >= ends_at)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                         context=context))
