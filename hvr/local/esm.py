"""A local stand-in for Lambda's SQS event source mapping.

It receives up to 10 messages, builds the real SQS event (ids, receipt handles, `ApproximateReceiveCount`,
`eventSourceARN`), calls the handler in process, deletes only what the `batchItemFailures` answer did not name,
and leaves the rest to come back after the visibility timeout, so redelivery and DLQ redrive are SQS's own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Handler = Callable[[dict[str, Any], Any], dict[str, Any] | None]


class InvocationKilled(BaseException):
    """The invocation ended from outside — a Lambda timeout or an out-of-memory kill — wherever the code was. A
    BaseException, so that no `except Exception` in the code under test can handle it, as none could in Lambda."""


@dataclass
class LambdaContextStub:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str = "local"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:local"
    aws_request_id: str = "local-request"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


class EventSourceMapping:
    def __init__(self, sqs: Any, queue_url: str, handler: Handler, batch_size: int = 10,
                 function_name: str = "local", redeliver: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self._sqs = sqs
        # SQS delivers at least once: a message handled and deleted may still come again. `redeliver(message)`
        # true leaves a handled message undeleted and visible at once, so it comes back with its own id.
        self.redeliver = redeliver
        self._url = queue_url
        self._handler = handler
        self._batch = batch_size
        self._context = LambdaContextStub(function_name=function_name)
        self._arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"]

    def poll_once(self) -> int:
        """One receive → invoke → delete cycle; returns how many messages were handed to the function."""
        # Short polls only: a long poll would hold the moto server's single lock for its whole wait.
        received = self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=self._batch,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            return 0
        event = {"Records": [self._record(msg) for msg in received]}
        try:
            response = self._handler(event, self._context) or {}
        except (Exception, InvocationKilled):  # a crashed or killed invocation fails the whole batch, as in Lambda
            return len(received)
        failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        done = [msg for msg in received if msg["MessageId"] not in failed]
        if self.redeliver is not None:
            again = [msg for msg in done if self.redeliver(msg)]
            for msg in again:
                self._sqs.change_message_visibility(QueueUrl=self._url, ReceiptHandle=msg["ReceiptHandle"],
                                                    VisibilityTimeout=0)
            done = [msg for msg in done if msg not in again]
        for start in range(0, len(done), 10):
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                         for i, m in enumerate(done[start:start + 10])],
            )
        return len(received)

    def _record(self, msg: dict[str, Any]) -> dict[str, Any]:
        attributes = msg.get("Attributes", {})
        return {
            "messageId": msg["MessageId"],
            "receiptHandle": msg["ReceiptHandle"],
            "body": msg["Body"],
            "attributes": {
                "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                "SentTimestamp": attributes.get("SentTimestamp", "0"),
                "SenderId": attributes.get("SenderId", "local"),
                "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", "0"),
            },
            "messageAttributes": {
                name: {"stringValue": value.get("StringValue"), "dataType": value.get("DataType", "String"),
                       "stringListValues": [], "binaryListValues": []}
                for name, value in msg.get("MessageAttributes", {}).items()
            },
            "md5OfBody": hashlib.md5(msg["Body"].encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._arn,
            "awsRegion": "us-east-1",
        }
