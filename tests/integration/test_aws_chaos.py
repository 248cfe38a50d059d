"""Chaos in the AWS calls (issue 19): DynamoDB throttling, S3 `SlowDown`, SQS and SNS internal errors and failed
`SendMessageBatch` entries, injected through botocore's event hooks on the embedded stack (hvr/local/chaos.py), while
jobs run on every provider. Each fault is retried by botocore or surfaces and is handled (a failed invocation's
messages come back, the sweeper rescues and announces): every job ends with a reason, none is paid twice, and the
outbox announces every terminal job. `make test` runs 4 jobs (one per provider); `make bench` the full run (slow
marker)."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from hvr.local.chaos import AwsChaos
from router.errors import HvrError
from router.models.request import VideoRequest
from router.services import sweeper
from router.services.submit import accept
from router.store.aws import client
from tests.integration.test_fault_soak import BODIES as CLOUD_BODIES

TENANT = "chaos"
# The fault soak's cloud jobs, and one for the GPU agent.
BODIES = [*CLOUD_BODIES, {"mode": "t2v", "prompt": "a paper boat", "resolution": "512x512", "aspect_ratio": "1:1",
                          "duration_s": 2, "quality": "draft", "providers": ["local"], "deadline_s": 3600}]
# Shares of calls answered with an error. botocore retries each up to 5 times, so at these rates about one SNS
# publish in 30 still surfaces to the code (the outbox's case), DynamoDB and SQS calls more rarely. Each retry
# sleeps botocore's backoff (about 0.5 s on average), which is what the scaled run's time goes on.
RATES = {"dynamodb": 0.1, "s3": 0.15, "sqs": 0.1, "sns": 0.5}
SCALED_RATES = {"dynamodb": 0.05, "s3": 0.1, "sqs": 0.05, "sns": 0.5}


def events_inbox(stack) -> tuple[object, str]:
    sqs, sns = client("sqs", stack.moto.url), client("sns", stack.moto.url)
    inbox = sqs.create_queue(QueueName=f"chaos-events-{random.randrange(10**9)}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=stack.stack.topic_arns["JobEventsTopic"], Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})
    return sqs, inbox


def announced(sqs, inbox: str) -> Counter[str]:
    seen: Counter[str] = Counter()
    while batch := sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            seen[json.loads(message["Body"])["job"]["id"]] += 1
        sqs.delete_message_batch(QueueUrl=inbox, Entries=[
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)])
    return seen


def chaos_run(stack, deps, jobs: int, seed: int, rates: dict[str, float] = RATES) -> dict:
    sqs, inbox = events_inbox(stack)
    ids = [accept(VideoRequest.parse_at_edge(BODIES[n % len(BODIES)]), TENANT, deps).id for n in range(jobs)]
    sweeps = surfaced = 0
    with AwsChaos(rates, batch_entry_rate=0.2, seed=seed) as chaos:
        def settled() -> bool:
            with chaos.paused():
                found = [deps.jobs.get(TENANT, job_id) for job_id in ids]
            return all(job.status.terminal and job.notified for job in found)

        for _ in range(40 + 4 * jobs):
            if stack.drain(settled, timeout_s=2):
                break
            try:  # the sweeper's minute, as a scheduled invocation that may fail and run again next time
                sweeper.sweep(deps)
                sweeps += 1
            except HvrError:
                surfaced += 1
        injected = dict(chaos.injected)
    assert settled(), "jobs not ended and announced"
    finished = [deps.jobs.get(TENANT, job_id) for job_id in ids]
    assert all(job.status.value == "succeeded" or job.error for job in finished)  # every ending has its reason
    for job in finished:
        rows = deps.ledger.for_job(TENANT, job.id)
        assert len(rows) == len({row.attempt_id for row in rows}) <= len(job.attempts)  # none paid twice
    seen = announced(sqs, inbox)
    assert set(ids) <= set(seen), set(ids) - set(seen)  # the outbox announced every terminal job
    return {"jobs": jobs, "injected": injected, "sweeps": sweeps, "sweeps_failed": surfaced,
            "announced_twice": sum(1 for job_id in ids if seen[job_id] > 1),
            "statuses": Counter(job.status.value for job in finished)}


def test_aws_chaos_scaled(stack, deps, capsys) -> None:
    report = chaos_run(stack, deps, jobs=4, seed=11, rates=SCALED_RATES)
    assert sum(report["injected"].values()) > 0
    with capsys.disabled():
        print(f"\n  aws chaos: {report}")


@pytest.mark.slow
def test_aws_chaos_full(stack, deps, capsys) -> None:
    report = chaos_run(stack, deps, jobs=200, seed=3)
    with capsys.disabled():
        print(f"\n  aws chaos (full): {report}")


def test_failed_batch_entries_are_sent_again_and_an_entry_that_keeps_failing_surfaces(stack) -> None:
    from router.store.campaigns import RouteBatches
    from router.store.messages import MessageKind, WorkerMessage

    sqs = client("sqs", stack.moto.url)
    url = sqs.create_queue(QueueName=f"chaos-batches-{random.randrange(10**9)}")["QueueUrl"]
    messages = [WorkerMessage(kind=MessageKind.ROUTE, tenant=TENANT, job_id=f"job_{n}") for n in range(45)]
    with AwsChaos({}, batch_entry_rate=0.3, seed=5) as chaos:
        RouteBatches(sqs, url, tries=8).send(messages)
        assert chaos.injected["sqs.SendMessageBatch.entry"] > 0
    received: Counter[str] = Counter()
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        received.update(json.loads(m["Body"])["job_id"] for m in batch)
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)])
    assert received == Counter(m.job_id for m in messages)  # every one, once
    with AwsChaos({}, batch_entry_rate=1.0), pytest.raises(RuntimeError, match="kept failing"):
        RouteBatches(sqs, url).send(messages[:3])
