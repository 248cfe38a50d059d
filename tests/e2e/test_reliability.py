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
    assert httpx.post(url, content=body, headers=good).status_code == 200
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


def test_provider_webhook_forgery_is_refused_and_changes_nothing(stack) -> None:
    from datetime import UTC, datetime

    from standardwebhooks.webhooks import Webhook

    from hvr.sandbox.all import REPLICATE_TOKEN
    from router.providers.replicate import fetch_webhook_secret, make_client
    from router.providers.runpod import webhook_token

    body = b'{"id": "rp-1", "status": "COMPLETED"}'
    base = f"{stack.url}/v1/webhooks/runpod?tenant=acme&job=job_x&attempt=att_x_1"
    assert httpx.post(base, content=body).status_code == 401
    assert httpx.post(f"{base}&token=forged", content=body).status_code == 401
    other = webhook_token(stack.webhook_token_secret, "att_other_1")
    assert httpx.post(f"{base}&token={other}", content=body).status_code == 401

    url = f"{stack.url}/v1/webhooks/replicate?tenant=acme&job=job_x&attempt=att_x_1"
    payload = '{"id": "p1", "status": "succeeded"}'
    secret = fetch_webhook_secret(make_client(REPLICATE_TOKEN, stack.sandboxes.servers["replicate"].url))
    now = datetime.now(UTC)

    def signed(msg_id: str, at: datetime, key: str = secret) -> dict[str, str]:
        return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
                "webhook-signature": Webhook(key).sign(msg_id, at, payload)}

    forged_key = "whsec_" + "A" * 32
    assert httpx.post(url, content=payload, headers=signed("m1", now, forged_key)).status_code == 401
    stale = datetime.fromtimestamp(now.timestamp() - 3600, UTC)
    assert httpx.post(url, content=payload, headers=signed("m2", stale)).status_code == 401
    first = httpx.post(url, content=payload, headers=signed("m3", now))
    replay = httpx.post(url, content=payload, headers=signed("m3", now))
    assert first.status_code == 200 and "queued" in first.json()
    assert replay.status_code == 200 and replay.json() == {"duplicate": True}


def test_a_dead_agent_process_is_restarted_by_the_stack(stack, acme) -> None:
    old = stack.agent.pid
    stack.agent.kill()  # SIGKILL, as the outside probe did
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (stack.agent.pid not in (None, old) and _answers(stack.agent.url)):
        time.sleep(0.1)
    assert stack.agent.running and stack.agent.pid != old, "the supervisor did not restart the agent"
    job = acme.post("/v1/jobs", json=DRAFT).json()
    done = wait_for(acme, job["id"])
    assert done["status"] == "succeeded", done["error"]


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
