"""Jobs-queue consumer: one SQS batch in, partial batch failures out. Each record is one `WorkerMessage`."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from router.observability import metrics
from router.services.deps import default_deps
from router.services.worker import handle
from router.store.messages import WorkerMessage

logger = Logger(service="hvr-worker")
# Not raising on a wholly failed batch keeps Lambda from scaling the poller down for one poison batch.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    message = WorkerMessage.model_validate_json(record.body)
    logger.append_keys(job_id=message.job_id, kind=message.kind.value)
    handle(message, default_deps(), receive_count=int(record.attributes.approximate_receive_count))


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                         context=context))
