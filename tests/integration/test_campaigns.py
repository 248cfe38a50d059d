"""Campaigns on the embedded stack (queue consumers driven by the test): manifests dropped in S3 and posted to the
API, bad lines, re-uploads, a deadline the GPU alone can't meet, re-planning, and duplicated deliveries.

Tests run in file order on one stack; the duplicated-deliveries test is last because it leaves provider work behind.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from hvr.local.embedded import EmbeddedStack
from router.models.budget import period_of
from router.models.campaign import Phase, campaign_id, item_job_id
from router.models.campaign_plan import EntryState, PlanInput
from router.models.common import ProviderKind
from router.models.job import Job
from router.models.offer import LocalEnergyPricing
from router.policy.catalog import Catalog
from router.policy.plan import PlanParams
from router.services import money
from router.services.campaigns import CampaignDeps, campaign_deps
from router.store.aws import client
from router.store.campaigns import plan_key
from router.store.keys import Principal

HEADER = {"campaign": {"deadline_s": 86400, "defaults": {"mode": "t2v", "resolution": "480p", "duration_s": 5}}}


def manifest(*lines: Any) -> bytes:
    return b"\n".join(x if isinstance(x, bytes) else json.dumps(x).encode() for x in lines) + b"\n"


def drop(stack: EmbeddedStack, tenant: str, name: str, body: bytes) -> str:
    s3 = client("s3", stack.moto.url)
    s3.put_object(Bucket=stack.stack.bucket_names["OutputsBucket"], Key=f"campaigns/{tenant}/{name}.jsonl", Body=body)
    return campaign_id(tenant, name)


def jobs_of(cd: CampaignDeps, tenant: str, cid: str) -> list[Job]:
    found: list[Job] = []
    cursor = None
    while True:
        page, cursor = cd.base.jobs.list(tenant, campaign_id=cid, limit=500, cursor=cursor)
        found += page
        if cursor is None:
            return found


def phase(cd: CampaignDeps, tenant: str, cid: str) -> Phase | None:
    found = cd.campaigns.find(tenant, cid)
    return found.campaign.phase if found else None


def poll_until(mapping: Any, done: Any, timeout_s: float = 60) -> bool:
    """Drive one queue's consumer until `done()`: the other queue waits (a deterministic interleaving)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return True
        if not mapping.poll_once():
            time.sleep(0.05)
    return bool(done())


def settle(stack: EmbeddedStack, quiet_polls: int = 3) -> None:
    """Let every queued message (not delayed ones) be handled."""
    quiet = 0
    while quiet < quiet_polls:
        quiet = quiet + 1 if stack.poll_once() == 0 else 0


@pytest.fixture
def api(stack: EmbeddedStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {stack.admin_key}"}, timeout=30) as c:
        yield c


@pytest.fixture
def workers(stack: EmbeddedStack) -> tuple[Any, Any]:
    by_function = {m._context.function_name: m for m in stack.mappings}
    return by_function["WorkerFunction"], by_function["CampaignsFunction"]


# --- bad lines, re-uploads, the API ---------------------------------------------------------------------------------

SPRING = manifest(
    {"campaign": {**HEADER["campaign"], "name": "spring", "budget_usd": "5.00"}},
    {"item_id": "g1", "prompt": "a paper boat on a pond"},  # line 2
    {"item_id": "b1", "prompt": "a red scarf", "colour": "red"},  # 3: unknown field
    {"prompt": "a kite over a beach"},  # 4: item id "4"
    b"{oops",  # 5: not JSON
    {"item_id": "b2", "prompt": "a mall tour", "duration_s": 301},  # 6: too long
    b"",  # 7: blank, nothing
    {"item_id": "g1", "prompt": "the same id again: collapses into line 2"},  # 8
    {"item_id": "g3", "prompt": "a clock", "resolution": "512x512", "aspect_ratio": "1:1", "duration_s": 2,
     "quality": "draft"},  # 9: only the local GPU renders 512x512
)


def test_bad_lines_are_recorded_exactly_and_the_good_ones_run(stack: EmbeddedStack, deps, api) -> None:
    cid = drop(stack, "dev", "spring", SPRING)
    assert stack.drain(lambda: api.get(f"/v1/campaigns/{cid}").json().get("status") == "completed", timeout_s=90)
    view = api.get(f"/v1/campaigns/{cid}").json()
    assert [(i["item_id"], i["line"], i["field"]) for i in view["invalid_items"]] == [
        ("b1", 3, "colour"), ("5", 5, ""), ("b2", 6, "duration_s")]
    messages = [i["message"] for i in view["invalid_items"]]
    assert messages[0] == "unknown field" and messages[1].startswith("not JSON")
    assert messages[2] == "Input should be less than or equal to 300"
    assert view["invalid_items_total"] == 3 and view["duplicates"] == 1
    assert view["counts"] == {"total": 3, "accepted": 0, "running": 0, "succeeded": 3, "failed": 0, "rejected": 0,
                              "expired": 0, "cancelled": 0}
    cd = campaign_deps()
    jobs = jobs_of(cd, "dev", cid)
    assert {j.id for j in jobs} == {item_job_id(cid, i) for i in ("g1", "4", "g3")}
    assert next(j for j in jobs if j.id == item_job_id(cid, "g1")).request.prompt == "a paper boat on a pond"
    assert view["offer_mix"]["local/animatediff-sd15"] == 1 and sum(view["offer_mix"].values()) == 3
    assert Decimal(view["spent_usd"]) == sum((j.cost.actual_usd for j in jobs), Decimal(0)) > 0
    # The same figure as the ledger's, and as the campaign's budget counts it (one definition of spend).
    period = period_of(deps.clock())
    assert Decimal(view["spent_usd"]) == money.spent(deps, [f"campaign:{cid}"], period)[f"campaign:{cid}"]
    assert deps.budgets.get_many([f"campaign:{cid}"], period)[f"campaign:{cid}"].spent_usd == Decimal(
        view["spent_usd"])
    assert view["plan"]["items"] == 3 and view["budget_usd"] == "5.0000"


def test_re_uploading_or_re_posting_a_campaign_creates_no_jobs(stack: EmbeddedStack, deps, api) -> None:
    cid = campaign_id("dev", "spring")
    cd = campaign_deps()
    before = {j.id: j.version for j in jobs_of(cd, "dev", cid)}
    campaign = cd.campaigns.get("dev", cid)
    assert before and campaign.phase is Phase.DONE
    drop(stack, "dev", "spring", SPRING)  # the same manifest again
    drop(stack, "dev", "spring", SPRING + manifest({"item_id": "new", "prompt": "one more"}))  # a changed one
    again = api.post("/v1/campaigns", json={"name": "spring", "items": [{"mode": "t2v", "prompt": "x"}]})
    settle(stack)
    assert again.status_code == 200 and again.json()["id"] == cid
    assert {j.id: j.version for j in jobs_of(cd, "dev", cid)} == before
    assert cd.campaigns.get("dev", cid).step == campaign.step


def test_a_campaign_posted_with_inline_items_runs_and_belongs_to_its_tenant(stack: EmbeddedStack, deps, api) -> None:
    body = {"name": "inline", "deadline_s": 86400, "defaults": {"mode": "t2v", "resolution": "480p"},
            "items": [{"item_id": "a", "prompt": "a lighthouse"}, {"prompt": "x", "fps": 1}]}
    created = api.post("/v1/campaigns", json=body)
    assert created.status_code == 202 and created.json()["status"] == "expanding"
    cid = created.json()["id"]
    assert cid == campaign_id("dev", "inline")
    assert stack.drain(lambda: api.get(f"/v1/campaigns/{cid}").json()["status"] == "completed", timeout_s=60)
    view = api.get(f"/v1/campaigns/{cid}").json()
    assert view["counts"]["succeeded"] == 1 and view["invalid_items"] == [
        {"item_id": "2", "line": 2, "field": "fps", "message": "Input should be greater than or equal to 4"}]
    deps.keys.put("other-key", Principal(tenant="other", role="member"), deps.clock())
    theirs = httpx.get(f"{stack.url}/v1/campaigns/{cid}", headers={"Authorization": "Bearer other-key"})
    assert theirs.status_code == 404
    refused = api.post("/v1/campaigns", json={"name": "theirs", "manifest": "s3://elsewhere/campaigns/other/x.jsonl"})
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "manifest"


# --- the plan: a deadline the GPU alone can't meet -----------------------------------------------------------------


@pytest.fixture
def cheap_gpu(deps) -> Iterator[None]:
    """A studio whose power is nearly free: its GPU is then cheaper than the cloud for WAN 1.3B at 480p."""
    original = deps.catalog
    cheap = LocalEnergyPricing(power_kw=Decimal("0.9"), usd_per_kwh=Decimal("0.001"),
                               depreciation_usd_per_hour=Decimal("0"), source="test: nearly free power",
                               as_of=date(2026, 1, 1))
    deps.catalog = Catalog(version=f"{original.version}+cheap-gpu", offers=tuple(
        o.model_copy(update={"pricing": cheap}) if o.provider is ProviderKind.LOCAL else o for o in original.offers))
    yield
    deps.catalog = original


def test_a_deadline_the_gpu_alone_cannot_meet_spills_exactly_enough_to_the_cloud(stack: EmbeddedStack, deps,
                                                                                 cheap_gpu, workers) -> None:
    jobs_queue, campaigns_queue = workers
    cd = campaign_deps()
    # 6 items of ~24,330 p90 GPU-seconds each; with 20 % of the GPU kept for interactive work one takes
    # ~30,400 s of wall time, so a deadline of 2.5 of those fits exactly 2 on the GPU.
    window = int(2.5 * 24_330 / 0.8)
    cid = drop(stack, "dev", "deadline", manifest(
        {"campaign": {"deadline_s": window, "interactive_share": 0.2,
                      "defaults": {"mode": "t2v", "resolution": "480p", "duration_s": 5}}},
        *({"item_id": f"clip-{n}", "prompt": f"product shot {n}"} for n in range(6))))
    assert poll_until(campaigns_queue, lambda: phase(cd, "dev", cid) is Phase.PACE)

    campaign = cd.campaigns.get("dev", cid)
    summary = campaign.plan
    assert summary is not None
    print(f"\nplan: {summary.local_items} on the GPU, {summary.cloud_items} in the cloud, ${summary.planned_cost_usd}"
          f" | all cloud ${summary.all_cloud.cost_usd} | all local ${summary.all_local.cost_usd} with "
          f"{summary.all_local.items_late} of 6 late (finishing {summary.all_local.finish_at})")
    assert (summary.local_items, summary.cloud_items) == (2, 4)
    assert summary.all_local.items_late == 4 and summary.all_cloud.items_late == 0
    assert summary.all_local.cost_usd < summary.planned_cost_usd < summary.all_cloud.cost_usd

    inputs = {i.item_id: i for i in cd.campaigns.plan_inputs("dev", cid)}
    stored = cd.manifests.get_plan(plan_key("dev", cid))
    _assert_the_testable_form(stored.entries, inputs, summary.planned_at, campaign.spec.interactive_share)
    planned = {e.job_id: e for e in stored.entries}
    held = [e for e in stored.entries if e.state is EntryState.HELD]
    assert len(held) == 1, "the GPU's queue is kept short: the second local item waits its turn"

    # The worker follows the plan: each released job goes where the plan put it, though the engine alone would
    # send every one of them to the (now cheaper) GPU.
    released = [e for e in stored.entries if e.state is not EntryState.HELD]
    assert poll_until(jobs_queue, lambda: all(j.attempts for j in jobs_of(cd, "dev", cid)) and len(
        jobs_of(cd, "dev", cid)) == len(released))
    for job in jobs_of(cd, "dev", cid):
        assert job.attempts[0].offer == planned[job.id].offer, job.routing

    # Reality diverges: the GPU goes away. The next pace step re-plans the held item onto its cloud offer.
    stack.agent.stop()
    assert poll_until(campaigns_queue, lambda: cd.manifests.get_plan(plan_key("dev", cid)).entries and all(
        e.state is not EntryState.HELD for e in cd.manifests.get_plan(plan_key("dev", cid)).entries))
    replanned = {e.item_id: e for e in cd.manifests.get_plan(plan_key("dev", cid)).entries}
    spilled = replanned[held[0].item_id]
    assert not spilled.local and spilled.offer == inputs[spilled.item_id].cloud.offer  # type: ignore[union-attr]
    assert cd.manifests.get_plan(plan_key("dev", cid)).summary.replans >= 1
    assert poll_until(jobs_queue, lambda: any(j.id == spilled.job_id and j.attempts for j in jobs_of(cd, "dev", cid)))
    job = next(j for j in jobs_of(cd, "dev", cid) if j.id == spilled.job_id)
    assert job.attempts[0].offer == spilled.offer


def _assert_the_testable_form(entries: list, inputs: dict[str, PlanInput], now: Any, share: float) -> None:
    """A: no cloud item could join the GPU's schedule (all items are cheaper there) without a late finish;
    B: no GPU item could move to the cloud more cheaply."""
    params = PlanParams(now=now, local_start=now, interactive_share=share)
    local = [inputs[e.item_id] for e in entries if e.local]
    for entry in entries:
        it = inputs[entry.item_id]
        assert it.local is not None and it.cloud is not None
        if entry.local:
            assert it.local.cost_usd < it.cloud.cost_usd  # B
        else:
            schedule = sorted([*local, it], key=lambda i: i.item_id)
            ends = now + timedelta(seconds=sum(i.local.seconds / params.rate for i in schedule))  # type: ignore[union-attr]
            assert it.deadline is not None and ends > it.deadline  # A


# --- duplicated deliveries (last: it leaves provider work behind) ---------------------------------------------------


@pytest.fixture
def duplicating(stack: EmbeddedStack) -> Iterator[list[int]]:
    """Every consumer sees 20 % of its messages twice: a copy is sent back to the queue before the batch runs.
    Follow-ups of running jobs (poll, finalize, callback) are acknowledged unprocessed: this is about creating and
    routing jobs, and a poll chain per job would swamp the one-process moto."""
    rng = random.Random(20)
    duplicated = [0]
    originals = [(m, m._handler) for m in stack.mappings]
    for mapping, handler in originals:
        def twice(event: dict[str, Any], context: Any, mapping: Any = mapping, handler: Any = handler) -> Any:
            records = [r for r in event["Records"] if json.loads(r["body"]).get("kind") in (None, "route", "step")]
            for record in records:
                if rng.random() < 0.2:
                    duplicated[0] += 1
                    mapping._sqs.send_message(QueueUrl=mapping._url, MessageBody=record["body"])
            return handler({"Records": records}, context) if records else {"batchItemFailures": []}
        mapping._handler = twice
    yield duplicated
    for mapping, handler in originals:
        mapping._handler = handler


def test_duplicated_deliveries_create_every_job_once_and_submit_it_once(stack: EmbeddedStack, deps, duplicating,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVR_CAMPAIGN_CHUNK_LINES", "20")  # many intake and release steps to duplicate
    replicate = stack.sandboxes.servers["replicate"]
    monkeypatch.setattr(replicate.timing, "run_s", 3600.0)  # they stay running: this test is about routing
    predictions_before = set(replicate.predictions)
    count = 100
    cid = drop(stack, "dev", "many", manifest(HEADER, *({"prompt": f"clip {n}"} for n in range(count))))
    cd = campaign_deps()
    assert stack.drain(lambda: phase(cd, "dev", cid) in (Phase.PACE, Phase.DONE) and all(
        j.attempts for j in jobs_of(cd, "dev", cid)), timeout_s=150)
    jobs = jobs_of(cd, "dev", cid)
    assert duplicating[0] > 0.1 * count, "enough deliveries were duplicated to matter"
    assert sorted(j.id for j in jobs) == sorted(item_job_id(cid, str(line)) for line in range(2, count + 2))
    assert [len(j.attempts) for j in jobs] == [1] * count
    submitted = set(replicate.predictions) - predictions_before
    assert len(submitted) == count, "one provider submission per item"
    campaign = cd.campaigns.get("dev", cid)
    assert (campaign.items, campaign.duplicates, campaign.invalid_lines) == (count, 0, 0)
    assert campaign.step > 2 * count / 20, "expansion went through many chunked steps"
