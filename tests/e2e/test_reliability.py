"""Redelivery, the DLQ, the sweeper and webhook authentication, through the running embedded stack."""

import time
from datetime import timedelta

import httpx

from router.models.common import new_id
from router.models.job import Job, JobStatus
from router.models.request import VideoRequest
from router.signing import sign
from tests.e2e.test_api import DRAFT, wait_for


def test_a_poison_message_reaches_the_dlq_through_real_redelivery(stack) -> None:
    from router.store.aws import client

    sqs = client("sqs", stack.moto.url)
    dlq = stack.stack.queue_urls["JobsDeadLetterQueue"]
    sqs.send_message(QueueUrl=stack.stack.queue_urls["JobsQueue"], MessageBody="{not json")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0, AttributeNames=["All"]).get("Messages", [])
        if found:
            assert found[0]["Body"] == "{not json"
            # maxReceiveCount from the template: the worker saw it that many times before SQS gave up.
            assert int(found[0]["Attributes"]["ApproximateReceiveCount"]) >= 5
            return
        time.sleep(0.2)
    raise AssertionError("poison message never reached the DLQ")


def _orphan(stack, deadline_in_s: float) -> Job:
    """A job written without its route message, as if the send after the write had been lost."""
    now = stack.deps.clock()
    job = Job(id=new_id("job"), tenant="acme", status=JobStatus.ACCEPTED, created_at=now, updated_at=now,
              deadline=now + timedelta(seconds=deadline_in_s), request=VideoRequest.model_validate(DRAFT))
    stack.deps.jobs.create(job)
    return job


def test_the_sweeper_routes_a_job_whose_message_was_lost(stack, acme) -> None:
    job = _orphan(stack, deadline_in_s=86400)
    assert wait_for(acme, job.id)["status"] == "succeeded"


def test_the_sweeper_expires_a_job_past_its_deadline(stack, acme) -> None:
    job = _orphan(stack, deadline_in_s=-1)
    done = wait_for(acme, job.id)
    assert done["status"] == "expired" and done["error"]["code"] == "deadline_expired"


def test_agent_webhooks_need_a_valid_fresh_signature(stack) -> None:
    path = "/v1/webhooks/local?tenant=acme&job=job_x"
    body = b'{"id": "att_x_1", "status": "succeeded"}'
    url = stack.url + path
    forged = sign("not-the-secret", "POST", path, body)
    assert httpx.post(url, content=body, headers=forged).status_code == 401
    assert httpx.post(url, content=body).status_code == 401
    good = sign(stack.agent_secret, "POST", path, body)
    assert httpx.post(url, content=body, headers=good).status_code == 202
    assert httpx.post(url, content=body, headers=good).status_code == 401  # the same nonce again: a replay


def test_terminal_states_are_published_as_job_events(stack, acme) -> None:
    import json

    from router.store.aws import client

    sqs, sns = client("sqs", stack.moto.url), client("sns", stack.moto.url)
    inbox = sqs.create_queue(QueueName="job-events-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=stack.stack.topic_arns["JobEventsTopic"], Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})
    job = acme.post("/v1/jobs", json=DRAFT).json()
    done = wait_for(acme, job["id"])
    events = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(e["job"]["id"] == job["id"] for e in events):
        events += [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10)
                   .get("Messages", [])]
    [event] = [e for e in events if e["job"]["id"] == job["id"]]
    assert event["type"] == f"job.{done['status']}" and event["job"]["status"] == done["status"]
