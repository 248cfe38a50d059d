"""Faults in the AWS calls of the embedded stack (issue 19): moto has no fault injection, so botocore's own event
hooks answer a share of calls with the error AWS would send — DynamoDB throttling, S3 `SlowDown`, SQS and SNS
internal errors — before the request leaves, and a share of `SendMessageBatch` entries come back failed. The code
under test sees exactly what it would see from AWS: botocore's standard retry mode retries what it retries, and
what it gives up on surfaces as a `ClientError` for the code to handle.

Not injected: `ConditionalCheckFailedException`. AWS returns it only when the condition is false, and the code reads
it as "someone else wrote first" (a write-once row already there); faking one would test a world AWS can't make.
Contention is made by concurrency instead (tests/integration/test_money.py)."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders

from router.store import aws

# The error each service answers a faulted call with: status, body, headers, by its wire protocol.
_ERRORS: dict[str, tuple[int, bytes, dict[str, str]]] = {
    "dynamodb": (400, json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                                  "message": "chaos: the level of configured provisioned throughput was exceeded"})
                 .encode(), {"Content-Type": "application/x-amz-json-1.0"}),
    "s3": (503, b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
                b"<Message>chaos: please reduce your request rate</Message></Error>",
           {"Content-Type": "application/xml"}),
    "sqs": (500, json.dumps({"__type": "com.amazon.coral.service#InternalFailure", "message": "chaos"}).encode(),
            {"Content-Type": "application/x-amz-json-1.0", "x-amzn-query-error": "InternalFailure;Receiver"}),
    "sns": (500, b"<ErrorResponse><Error><Type>Receiver</Type><Code>InternalError</Code>"
                 b"<Message>chaos</Message></Error><RequestId>chaos</RequestId></ErrorResponse>",
            {"Content-Type": "text/xml"}),
}


# What the Lambda service does for an SQS-triggered function, not the code under test: left alone.
_INFRASTRUCTURE = frozenset({"sqs.ReceiveMessage", "sqs.DeleteMessage", "sqs.DeleteMessageBatch",
                             "sqs.ChangeMessageVisibility", "sqs.ChangeMessageVisibilityBatch"})


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


class AwsChaos:
    """Faults at `rates` (service → share of calls, e.g. {"dynamodb": 0.1}); `batch_entry_rate`: the share of a
    `SendMessageBatch`'s entries answered failed. `injected` counts what was done, by "service.Operation"."""

    def __init__(self, rates: Mapping[str, float], *, batch_entry_rate: float = 0.0, seed: int = 0) -> None:
        unknown = set(rates) - set(_ERRORS)
        if unknown:
            raise ValueError(f"no chaos for {sorted(unknown)}: one of {sorted(_ERRORS)}")
        self.rates, self.batch_entry_rate = dict(rates), batch_entry_rate
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._installed: list[Any] = []

    def __enter__(self) -> AwsChaos:
        for made in list(aws.MADE):
            self._install(made)
        aws.CLIENT_HOOKS.append(self._install)
        return self

    def __exit__(self, *exc: object) -> None:
        aws.CLIENT_HOOKS.remove(self._install)
        for made in self._installed:
            for event, handler in self._handlers():
                made.meta.events.unregister(event, handler)
        self._installed.clear()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Calls made by this thread inside go through untouched: a test reading what happened."""
        self._local.paused = True
        try:
            yield
        finally:
            self._local.paused = False

    def _install(self, made: Any) -> None:
        for event, handler in self._handlers():
            made.meta.events.register(event, handler)
        self._installed.append(made)

    def _handlers(self) -> list[tuple[str, Any]]:
        return [("before-send", self._before_send),
                ("before-parameter-build.sqs.SendMessageBatch", self._drop_entries),
                ("before-call.sqs.SendMessageBatch", self._all_dropped),
                ("after-call.sqs.SendMessageBatch", self._after_batch)]

    def _draw(self, rate: float) -> bool:
        if rate <= 0 or getattr(self._local, "paused", False):
            return False
        with self._lock:
            return self._rng.random() < rate

    def _before_send(self, request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        # event_name: before-send.<service>.<Operation>
        _event, service, operation, *_rest = [*event_name.split("."), "", ""]
        call = f"{service}.{operation}"
        if service not in self.rates or call in _INFRASTRUCTURE or not self._draw(self.rates[service]):
            return None
        status, body, headers = _ERRORS[service]
        with self._lock:
            self.injected[call] += 1
        answer = HTTPHeaders()
        for name, value in {**headers, "x-amzn-RequestId": "chaos"}.items():
            answer[name] = value
        return AWSResponse(request.url, status, answer, _Body(body))

    # A failed batch entry is one SQS did not enqueue: the entries drawn to fail are taken out of the request before
    # it is built, and answered failed after the call (or instead of it, when none is left to send).
    def _drop_entries(self, params: dict[str, Any], **_: Any) -> None:
        kept: list[dict[str, Any]] = []
        dropped: list[dict[str, Any]] = []
        for entry in params.get("Entries", []):
            (dropped if self._draw(self.batch_entry_rate) else kept).append(entry)
        if kept:  # all dropped: the request stays whole (an empty one is invalid) and is never sent
            params["Entries"] = kept
        self._local.all_dropped = bool(dropped) and not kept
        self._local.dropped = [{"Id": entry["Id"], "SenderFault": False, "Code": "InternalError",
                                "Message": "chaos: entry not sent"} for entry in dropped]
        with self._lock:
            self.injected["sqs.SendMessageBatch.entry"] += len(dropped)

    def _all_dropped(self, **_: Any) -> tuple[Any, dict[str, Any]] | None:
        if not getattr(self._local, "all_dropped", False):
            return None
        dropped, self._local.dropped, self._local.all_dropped = self._local.dropped, None, False
        return AWSResponse("chaos", 200, HTTPHeaders(), _Body(b"{}")), {"Successful": [], "Failed": dropped,
                                                                       "ResponseMetadata": {"HTTPStatusCode": 200}}

    def _after_batch(self, parsed: dict[str, Any], **_: Any) -> None:
        dropped = getattr(self._local, "dropped", None) or []
        self._local.dropped = None
        parsed["Failed"] = [*parsed.get("Failed", []), *dropped]
