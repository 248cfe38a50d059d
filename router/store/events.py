"""Job events on the SNS topic: one message per terminal state, with the job's public view."""

from __future__ import annotations

import json
from typing import Any

from router.models.job import Job
from router.store.errors import aws_errors


@aws_errors
class EventPublisher:
    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self._topic = topic_arn

    def job_ended(self, job: Job) -> None:
        self._sns.publish(
            TopicArn=self._topic,
            Message=json.dumps({"type": f"job.{job.status.value}", "job": job.view().model_dump(mode="json")}),
            MessageAttributes={
                "type": {"DataType": "String", "StringValue": f"job.{job.status.value}"},
                "tenant": {"DataType": "String", "StringValue": job.tenant},
            },
        )
