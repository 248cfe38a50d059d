"""Operator alerts on the alerts SNS topic (budget thresholds, spend-mode changes)."""

from __future__ import annotations

from typing import Any

from router.store.errors import aws_errors


@aws_errors
class AlertPublisher:
    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self._topic = topic_arn

    def publish(self, message: str, subject: str) -> None:
        self._sns.publish(TopicArn=self._topic, Message=message, Subject=subject[:100])
