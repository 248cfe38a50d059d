"""The embedded stack's moto SQS after `speed_up_sqs`: the same answers (retention, delays, visibility) at a cost
that no longer grows with the queue's depth for every message received."""

from __future__ import annotations

import time

import boto3
import pytest
from moto.sqs.models import sqs_backends

from hvr.local.moto_server import REGION, speed_up_sqs

ACCOUNT = "123456789012"


@pytest.fixture
def sqs(in_process_aws: None) -> object:
    speed_up_sqs()
    return boto3.client("sqs", region_name=REGION)


def test_a_message_past_the_queues_retention_is_not_delivered_and_a_fresh_one_is(sqs) -> None:
    url = sqs.create_queue(QueueName="kept", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    # In this order: moto stops a receive at the first message past retention.
    sqs.send_message(QueueUrl=url, MessageBody="new")
    sqs.send_message(QueueUrl=url, MessageBody="old")
    [old] = [m for m in sqs_backends[ACCOUNT][REGION].queues["kept"]._messages if m.body == "old"]
    old.sent_timestamp -= 61_000  # sent 61 s before the 60 s retention would let it be read
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]
    assert bodies == ["new"]


def test_delays_and_visibility_still_hold_a_message_back(sqs) -> None:
    url = sqs.create_queue(QueueName="timed")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
    sqs.send_message(QueueUrl=url, MessageBody="now")
    [now] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=1)["Messages"]
    assert now["Body"] == "now"
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessagesDelayed"], attributes["ApproximateNumberOfMessagesNotVisible"]) \
        == ("1", "1")
    assert not sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages")
    time.sleep(1.1)
    bodies = sorted(m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"])
    assert bodies == ["later", "now"]
