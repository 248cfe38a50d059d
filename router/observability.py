"""The one Metrics instance (CloudWatch EMF, namespace `hvr`); handlers flush it with `@metrics.log_metrics`."""

from __future__ import annotations

from aws_lambda_powertools import Metrics

metrics = Metrics(namespace="hvr", service="hvr")
