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

from router.local.embedded import EmbeddedStack
from router.models.campaign import Phase, campaign_id, item_job_id
from router.services.campaigns import campaign_deps
from router.store.aws import client

ITEMS = int(os.environ.get("HVR_BENCH_CAMPAIGN_ITEMS", "10000"))
DUPLICATED = 0.2


def _duplicate_deliveries(stack: EmbeddedStack, share: float, seed: int = 8) -> list[int]:
    """Before each batch, a copy of `share` of its messages goes back to the queue; follow-up messages of running
    jobs (poll, finalize, callback) are acknowledged without running them."""
    rng = random.Random(seed)
    count = [0]
    for mapping in stack.mappings:
        handler = mapping._handler

        def twice(event: dict[str, Any], context: Any, mapping: Any = mapping, handler: Any = handler) -> Any:
            records = [r for r in event["Records"] if json.loads(r["body"]).get("kind") in (None, "route", "step")]
            for record in records:
                if rng.random() < share:
                    count[0] += 1
                    mapping._sqs.send_message(QueueUrl=mapping._url, MessageBody=record["body"])
            return handler({"Records": records}, context) if records else {"batchItemFailures": []}

        mapping._handler = twice
    return count


def _drive(mapping: Any, done: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        if not mapping.poll_once():
            time.sleep(0.02)
    return True


@pytest.mark.slow
def test_a_10000_item_manifest_expands_and_routes_with_duplicated_deliveries(tmp_path: Path) -> None:
    header = {"campaign": {"deadline_s": 7 * 86400,
                           "defaults": {"mode": "t2v", "resolution": "480p", "duration_s": 5}}}
    body = "\n".join([json.dumps(header), *(json.dumps({"item_id": f"sku-{n:05d}", "prompt": f"product {n}"})
                                            for n in range(ITEMS))]).encode()
    with EmbeddedStack(tmp_path, time_scale=5000.0, background=False) as stack:
        stack.sandboxes.servers["replicate"].timing.run_s = 86400.0  # routing is measured, not rendering
        duplicated = _duplicate_deliveries(stack, DUPLICATED)
        by_function = {m._context.function_name: m for m in stack.mappings}
        cd = campaign_deps()
        cid = campaign_id("dev", "scale")

        def phase() -> Phase | None:
            found = cd.campaigns.find("dev", cid)
            return found.campaign.phase if found else None

        started = time.monotonic()
        client("s3", stack.moto.url).put_object(Bucket=stack.stack.bucket_names["OutputsBucket"],
                                                Key="campaigns/dev/scale.jsonl", Body=body)
        assert _drive(by_function["CampaignsFunction"], lambda: phase() is Phase.PACE, timeout_s=3600)
        expanded_s = time.monotonic() - started
        campaign = cd.campaigns.get("dev", cid)

        def jobs() -> list[Any]:
            found, cursor = [], None
            while True:
                page, cursor = cd.base.jobs.list("dev", campaign_id=cid, limit=1000, cursor=cursor)
                found += page
                if cursor is None:
                    return found

        routed_started = time.monotonic()
        unrouted = [ITEMS]

        def all_routed() -> bool:
            # Re-reading 10,000 jobs is itself slow on moto: look again only once the queue has run dry.
            unrouted[0] = sum(1 for j in jobs() if not j.attempts)
            return unrouted[0] == 0

        worker = by_function["WorkerFunction"]
        deadline = time.monotonic() + 7200
        while not all_routed():
            assert time.monotonic() < deadline, f"{unrouted[0]} jobs still unrouted"
            while worker.poll_once():
                pass
        routed_s = time.monotonic() - routed_started
        final = jobs()
        predictions = len(stack.sandboxes.servers["replicate"].predictions)

    print(f"\ncampaign of {ITEMS} items, {duplicated[0]} duplicated deliveries ({DUPLICATED:.0%} of messages)\n"
          f"  expansion: {expanded_s:.1f} s = {ITEMS / expanded_s:.0f} items/s "
          f"({campaign.step} steps, chunks of {cd.settings.chunk_lines} lines)\n"
          f"  routing:   {routed_s:.1f} s = {ITEMS / routed_s:.0f} jobs/s\n"
          f"  jobs {len(final)}, attempts {sum(len(j.attempts) for j in final)}, provider submissions {predictions}")
    assert duplicated[0] > 0.15 * ITEMS
    assert sorted(j.id for j in final) == sorted(item_job_id(cid, f"sku-{n:05d}") for n in range(ITEMS))
    assert all(len(j.attempts) == 1 for j in final), "0 duplicates: one attempt per job"
    assert predictions == ITEMS, "0 duplicates at the provider: one submission per item"
    assert (campaign.items, campaign.duplicates, campaign.invalid_lines) == (ITEMS, 0, 0)
