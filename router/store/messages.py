"""Jobs-queue messages: `route`, `poll`, `finalize`, each keyed on the job (consumers are idempotent on it)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from router.backoff import SQS_MAX_DELAY_S
from router.store.errors import aws_errors


class MessageKind(StrEnum):
    ROUTE = "route"
    POLL = "poll"
    FINALIZE = "finalize"
    CALLBACK = "callback"  # deliver the terminal-state callback to the client's callback_url


class WorkerMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: MessageKind
    tenant: str
    job_id: str
    attempt_id: str | None = None
    provider_job_id: str | None = None  # set by a webhook that names the provider's job
    poll_n: int = 0  # how many polls (or callback deliveries) came before this one, for the backoff
    chain: int | None = None  # the attempt's poll chain this message continues; None: a one-off (a webhook's hint)


@aws_errors
class JobQueue:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url

    def send(self, message: WorkerMessage, delay_s: float = 0) -> None:
        delay = max(0, min(SQS_MAX_DELAY_S, round(delay_s)))
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=message.model_dump_json(),
            DelaySeconds=delay,
            MessageAttributes={"kind": {"DataType": "String", "StringValue": message.kind.value}},
        )

    def backlog(self) -> int:
        found = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(found["Attributes"]["ApproximateNumberOfMessages"])
