"""A 10,000-item manifest on the embedded stack with 20 % of SQS deliveries duplicated (`make bench`).

Expansion (S3 event → chunked intake → plan → chunked release: every job created with its route message) is timed
on its own, with only the campaigns queue consumed, and reported in items per second; then the worker routes every
job. Rendering is not part of it: the provider keeps every job running, and the poll messages that would follow
them are acknowledged unprocessed (10,000 poll chains would swamp a one-process moto). The outcome: every item's job
exactly once, each submitted to the provider exactly once.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from hvr.local.embedded import EmbeddedStack
from router.models.campaign import Phase, campaign_id, item_job_id
from router.services.campaigns import campaign_deps
from router.store.aws import client
from tests.bench.conftest import Record

ITEMS = int(os.environ.get("HVR_BENCH_CAMPAIGN_ITEMS", "10000"))
DUPLICATED = 0.2


def _duplicate_deliveries(stack: EmbeddedStack, share: float, busy: dict[str, float], seed: int = 8) -> list[int]:
    """Before each batch, a copy of `share` of its messages goes back to the queue; follow-up messages of running
    jobs (poll, finalize, callback) are acknowledged without running them. `busy` collects each function's time."""
    rng = random.Random(seed)
    count = [0]
    for mapping in stack.mappings:
        handler, name = mapping._handler, mapping._context.function_name

        def twice(event: dict[str, Any], context: Any, mapping: Any = mapping, handler: Any = handler,
                  name: str = name) -> Any:
            records = [r for r in event["Records"] if json.loads(r["body"]).get("kind") in (None, "route", "step")]
            for record in records:
                if rng.random() < share:
                    count[0] += 1
                    mapping._sqs.send_message(QueueUrl=mapping._url, MessageBody=record["body"])
            started = time.perf_counter()
            try:
                return handler({"Records": records}, context) if records else {"batchItemFailures": []}
            finally:
                busy[name] = busy.get(name, 0.0) + time.perf_counter() - started

        mapping._handler = twice
    return count


@pytest.mark.slow
def test_a_10000_item_manifest_expands_and_routes_with_duplicated_deliveries(tmp_path: Path,
                                                                            bench_record: Record) -> None:
    header = {"campaign": {"deadline_s": 7 * 86400,
                           "defaults": {"mode": "t2v", "resolution": "480p", "duration_s": 5}}}
    body = "\n".join([json.dumps(header), *(json.dumps({"item_id": f"sku-{n:05d}", "prompt": f"product {n}"})
                                            for n in range(ITEMS))]).encode()
    busy: dict[str, float] = {}
    with EmbeddedStack(tmp_path, time_scale=5000.0, background=False) as stack:
        stack.sandboxes.servers["replicate"].timing.run_s = 86400.0  # routing is measured, not rendering
        duplicated = _duplicate_deliveries(stack, DUPLICATED, busy)
        by_function = {m._context.function_name: m for m in stack.mappings}
        campaigns, worker = by_function["CampaignsFunction"], by_function["WorkerFunction"]
        cd = campaign_deps()
        cid = campaign_id("dev", "scale")

        def phase() -> Phase | None:
            found = cd.campaigns.find("dev", cid)
            return found.campaign.phase if found else None

        def jobs() -> list[Any]:
            found, cursor = [], None
            while True:
                page, cursor = cd.base.jobs.list("dev", campaign_id=cid, limit=1000, cursor=cursor)
                found += page
                if cursor is None:
                    return found

        started = time.monotonic()
        client("s3", stack.moto.url).put_object(Bucket=stack.stack.bucket_names["OutputsBucket"],
                                                Key="campaigns/dev/scale.jsonl", Body=body)
        # As Lambda's pollers would, the worker keeps up with the route messages: moto's SQS slows with depth.
        # After the release the campaign only paces (not measured here), so its queue is left alone.
        while True:
            assert time.monotonic() - started < 3 * 3600, "gave up"
            if worker.poll_once():
                continue
            if phase() is not Phase.PACE:
                campaigns.poll_once()
            elif not any(not j.attempts for j in jobs()):
                break
            else:
                time.sleep(0.2)
        wall_s = time.monotonic() - started
        campaign = cd.campaigns.get("dev", cid)
        final = jobs()
        predictions = len(stack.sandboxes.servers["replicate"].predictions)

    expansion_s, routing_s = busy["CampaignsFunction"], busy["WorkerFunction"]
    print(f"\ncampaign of {ITEMS} items, {duplicated[0]} duplicated deliveries ({DUPLICATED:.0%} of messages), "
          f"{wall_s:.0f} s in all\n"
          f"  expansion (campaigns function): {expansion_s:.1f} s = {ITEMS / expansion_s:.0f} items/s "
          f"({campaign.step} steps, chunks of {cd.settings.chunk_lines} lines)\n"
          f"  routing (worker function):      {routing_s:.1f} s = {ITEMS / routing_s:.0f} jobs/s\n"
          f"  jobs {len(final)}, attempts {sum(len(j.attempts) for j in final)}, provider submissions {predictions}")
    bench_record("campaign_scale", f"{ITEMS} items", {
        "duplicated_deliveries": duplicated[0], "wall_s": round(wall_s, 1), "expansion_s": round(expansion_s, 2),
        "expansion_items_per_s": round(ITEMS / expansion_s), "routing_s": round(routing_s, 2),
        "routing_jobs_per_s": round(ITEMS / routing_s), "jobs": len(final),
        "attempts": sum(len(j.attempts) for j in final), "provider_submissions": predictions})
    assert duplicated[0] > 0.15 * ITEMS
    assert sorted(j.id for j in final) == sorted(item_job_id(cid, f"sku-{n:05d}") for n in range(ITEMS))
    assert all(len(j.attempts) == 1 for j in final), "0 duplicates: one attempt per job"
    assert predictions == ITEMS, "0 duplicates at the provider: one submission per item"
    assert (campaign.items, campaign.duplicates, campaign.invalid_lines) == (ITEMS, 0, 0)
