"""Tenant isolation (issue 13): a tenant-supplied id or ref never reaches another tenant's budget or uploads.

Every path that creates a job runs one admission check (`router.services.submit.admission_errors`): `POST /v1/jobs`
on its request, campaign intake on each line. The worker re-checks input refs before it presigns anything.
Two member keys, `t1` and `t2`, over the embedded stack's HTTP API; the tests drive the queues themselves.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from PIL import Image

from hvr.local.embedded import EmbeddedStack
from router.models.budget import period_of
from router.models.campaign import item_job_id
from router.models.job import Job, JobStatus
from router.models.request import VideoRequest
from router.services.route import ForeignInput, input_urls
from router.store.errors import NotFound
from router.store.keys import Principal
from router.store.messages import MessageKind, WorkerMessage

DRAFT = {"mode": "t2v", "prompt": "a paper boat", "resolution": "512x512", "aspect_ratio": "1:1",
         "duration_s": 2, "quality": "draft", "deadline_s": 86400}
# What the local GPU renders from a start image (WAN 2.1 1.3B): routable, so a foreign ref would reach a provider.
I2V = {"mode": "i2v", "prompt": "the product turns", "resolution": "480p", "duration_s": 5, "quality": "draft",
       "deadline_s": 86400}
TERMINAL = {"succeeded", "failed", "cancelled", "expired", "rejected"}


def member(stack: EmbeddedStack, tenant: str) -> httpx.Client:
    key = f"{tenant}-member-key"
    stack.deps.keys.put(key, Principal(tenant=tenant, role="member"), stack.deps.clock())
    return httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


@pytest.fixture(scope="module")
def t1(stack: EmbeddedStack) -> Iterator[httpx.Client]:
    with member(stack, "t1") as c:
        yield c


@pytest.fixture(scope="module")
def t2(stack: EmbeddedStack) -> Iterator[httpx.Client]:
    with member(stack, "t2") as c:
        yield c


@pytest.fixture
def presigned(deps: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every key the artifact store presigns a GET for, while the test runs."""
    keys: list[str] = []
    original = deps.artifacts.presign_get

    def spy(key: str, expires_s: int = 3600) -> str:
        keys.append(key)
        return str(original(key, expires_s=expires_s))

    monkeypatch.setattr(deps.artifacts, "presign_get", spy)
    return keys


def upload(api: httpx.Client, colour: str) -> str:
    """A real picture (the local GPU's sim engine opens it), uploaded through the tenant's own presigned PUT."""
    picture = io.BytesIO()
    Image.new("RGB", (64, 36), colour).save(picture, format="PNG")
    ticket = api.post("/v1/uploads", json={"content_type": "image/png"}).json()
    put = httpx.put(ticket["upload_url"], content=picture.getvalue(), headers={"content-type": "image/png"})
    assert put.status_code == 200
    return str(ticket["ref"])


def key_of(ref: str) -> str:
    return ref.split("/", 3)[3]


def campaign_budget(deps: Any, cid: str) -> tuple[Decimal, Decimal]:
    scope = f"campaign:{cid}"
    budget = deps.budgets.get_many([scope], period_of(deps.clock()))[scope]
    return budget.spent_usd, budget.reserved_usd


def assert_refused(response: httpx.Response, field: str) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert [e["field"] for e in problem["errors"]] == [field]
    return problem


# --- item 1: campaign_id names a campaign of the caller's tenant ---------------------------------------------------


def test_a_job_naming_another_tenants_campaign_is_refused_and_its_budget_is_untouched(
        stack: EmbeddedStack, deps: Any, t1: httpx.Client, t2: httpx.Client) -> None:
    created = t1.post("/v1/campaigns", json={"name": "launch", "budget_usd": "5.00", "deadline_s": 86400,
                                             "defaults": {k: v for k, v in DRAFT.items() if k != "deadline_s"},
                                             "items": [{"item_id": "a", "prompt": "a lighthouse"}]})
    assert created.status_code == 202, created.text
    cid = created.json()["id"]
    assert stack.drain(lambda: t1.get(f"/v1/campaigns/{cid}").json()["status"] == "completed", timeout_s=60)
    before = campaign_budget(deps, cid)

    refused = assert_refused(t2.post("/v1/jobs", json={**DRAFT, "campaign_id": cid}), "campaign_id")
    unknown = assert_refused(t2.post("/v1/jobs", json={**DRAFT, "campaign_id": "cmp_NOSUCHCAMPAIGN"}), "campaign_id")
    assert refused["errors"] == unknown["errors"], "another tenant's id and an unknown one look the same"
    # A quote would show the campaign's remaining budget in its reasons.
    assert_refused(t2.post("/v1/quotes", json={**DRAFT, "campaign_id": cid}), "campaign_id")
    assert_refused(t2.post("/v1/jobs", json={**DRAFT, "campaign_id": cid}, headers={"Idempotency-Key": "k1"}),
                   "campaign_id")
    stack.drain(lambda: False, timeout_s=1)  # anything queued would run now
    assert t2.get("/v1/jobs").json()["items"] == []
    assert campaign_budget(deps, cid) == before

    # A tenant may attach a direct job to its own campaign: it is listed with it and spends its budget.
    own = t1.post("/v1/jobs", json={**DRAFT, "campaign_id": cid})
    assert own.status_code == 202, own.text
    assert stack.drain(lambda: t1.get(f"/v1/jobs/{own.json()['id']}").json()["status"] in TERMINAL)
    job = t1.get(f"/v1/jobs/{own.json()['id']}").json()
    assert job["status"] == "succeeded", job["error"]
    assert own.json()["id"] in [j["id"] for j in t1.get("/v1/jobs", params={"campaign_id": cid}).json()["items"]]
    assert campaign_budget(deps, cid) == (before[0] + Decimal(job["cost"]["actual_usd"]), before[1])

    # The rest of the class: every other way t2 could name t1's campaign or job reads nothing of t1's.
    assert t2.get(f"/v1/campaigns/{cid}").status_code == 404
    assert t2.get("/v1/jobs", params={"campaign_id": cid}).json()["items"] == []
    assert t2.get("/v1/costs", params={"group_by": "campaign"}).json()["groups"] == []
    assert t2.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert t2.post(f"/v1/jobs/{job['id']}/cancel").status_code == 404
    seen = t2.get("/v1/budgets")  # a member reads its own tenant's budgets: none of t1's campaign's
    assert seen.status_code == 200 and f"campaign:{cid}" not in seen.text
    assert t2.put(f"/v1/budgets/campaign:{cid}", json={"limit_usd": "0.01"}).status_code == 403
    assert campaign_budget(deps, cid) == (before[0] + Decimal(job["cost"]["actual_usd"]), before[1])


# --- item 2: campaign lines go through the same admission as POST /v1/jobs ------------------------------------------


def test_a_campaign_line_with_another_tenants_upload_is_refused_and_makes_no_job(
        stack: EmbeddedStack, deps: Any, t1: httpx.Client, t2: httpx.Client, presigned: list[str]) -> None:
    theirs, mine = upload(t1, "red"), upload(t2, "blue")
    assert_refused(t2.post("/v1/jobs", json={**I2V, "image": theirs}), "image")

    created = t2.post("/v1/campaigns", json={"name": "borrowed", "deadline_s": 86400, "items": [
        {**DRAFT, "item_id": "plain"},
        {**I2V, "item_id": "steal", "image": theirs},
        {**I2V, "item_id": "mine", "image": mine}]})
    assert created.status_code == 202, created.text
    cid = created.json()["id"]
    assert stack.drain(lambda: t2.get(f"/v1/campaigns/{cid}").json()["status"] == "completed", timeout_s=90)

    view = t2.get(f"/v1/campaigns/{cid}").json()
    assert view["invalid_items"] == [{"item_id": "steal", "line": 2, "field": "image",
                                      "message": "must be a ref returned by POST /v1/uploads"}]
    assert view["counts"]["total"] == 2
    with pytest.raises(NotFound):
        deps.jobs.get("t2", item_job_id(cid, "steal"))
    own = deps.jobs.get("t2", item_job_id(cid, "mine"))  # its own upload is admitted, presigned and rendered
    assert own.request.image == mine and own.status is JobStatus.SUCCEEDED, own.error
    assert key_of(mine) in presigned and key_of(theirs) not in presigned


# --- defence in depth: the worker presigns only the job's own tenant's uploads ---------------------------------------


def test_the_worker_never_presigns_another_tenants_upload(stack: EmbeddedStack, deps: Any, t1: httpx.Client,
                                                          presigned: list[str]) -> None:
    theirs = upload(t1, "red")
    now = deps.clock()
    # A stored job that never went through admission (written before it existed, or by some other path).
    request = VideoRequest.model_validate({**I2V, "image": theirs})
    job = Job(id="job_FOREIGNINPUT0000000000000", tenant="t2", status=JobStatus.ACCEPTED, created_at=now,
              updated_at=now, deadline=now + timedelta(days=1), request=request)
    deps.jobs.create(job)
    deps.queue.send(WorkerMessage(kind=MessageKind.ROUTE, tenant="t2", job_id=job.id))
    assert stack.drain(lambda: deps.jobs.get("t2", job.id).status.terminal)

    ended = deps.jobs.get("t2", job.id)
    assert ended.status is JobStatus.REJECTED and ended.attempts == []
    assert ended.error is not None and ended.error.code == "invalid_input"
    assert ended.error.message.startswith("image: not an upload of tenant t2")
    assert key_of(theirs) not in presigned

    # `input_urls` itself refuses too, whatever reaches it: another tenant's key, a path that climbs out of the
    # tenant's prefix, anything else in (or outside) our bucket.
    bucket = deps.artifacts.bucket
    for ref in (theirs, f"s3://{bucket}/uploads/t2/../{key_of(theirs).removeprefix('uploads/')}",
                f"s3://{bucket}/outputs/t1/job_x/att_x.mp4", "s3://elsewhere/uploads/t2/x.png"):
        with pytest.raises(ForeignInput):
            input_urls(job.model_copy(update={"request": request.model_copy(update={"image": ref})}), deps)
    own = f"s3://{bucket}/uploads/t2/0123456789abcdef0123456789abcdef.png"
    assert set(input_urls(job.model_copy(update={"request": request.model_copy(update={"image": own})}), deps)) == {
        "image"}
    assert presigned == [key_of(own)]
