"""`make demo`: every sample request through the HTTP API of the embedded stack, end to end.

The stack (moto on loopback, the functions behind a local API Gateway, SQS consumers, the sweeper, the GPU agent
on its `sim` engine) comes up; each sample is POSTed to /v1/jobs and followed until it ends. One row per sample:
status, offer, the policy's reason, estimated and actual cost, turnaround with the agent's render time inside
it, output file. MP4s land under ./demo-out/. Then the studio's scorecard for the demo's window, its ratings seeded
(each delivered video rated its offer's catalog stars, marked as the demo's). Exits 1 if any outcome differs from
samples/requests/expected.yaml.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from hvr.campaign_text import campaign_body, format_campaign
from hvr.client import ApiClient
from hvr.scorecard_text import format_scorecard
from hvr.timescale import default_time_scale
from router.models.api import FieldProblem, Problem
from router.models.campaign import CampaignStatus, CampaignView
from router.models.job import JobView
from router.models.rating import RatingCreate
from router.services.scorecard import Scorecard

SAMPLES = Path("samples/requests")
# The studio's card and two it might add: each box its card's VRAM and speed (hvr.local.embedded.CARDS), and the
# router places every local job on one of them.
FLEET = "5090,4090,3090"
CAMPAIGN = Path("samples/campaigns/black-friday.jsonl")
DEMO_RATER = "demo-seeded"  # not a key's hash: what no API caller can rate as


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    parser.add_argument("--agents", default=FLEET, help=f"the sim GPU boxes (default {FLEET}; one: 5090)")
    parser.add_argument("--time-scale", type=float, default=None,
                        help="modelled seconds per wall second (default: the slowest sample renders in ~8 s)")
    args = parser.parse_args(argv)
    expected: dict[str, dict[str, Any]] = yaml.safe_load((args.samples / "expected.yaml").read_text())
    samples = sorted(args.samples.glob("*.json"))
    time_scale = args.time_scale or default_time_scale(args.samples)
    print(f"hvr demo: {len(samples)} samples over HTTP, time scale {time_scale:.0f}x "
          f"(modelled GPU seconds per wall second), GPU boxes {args.agents}")
    # The samples show the routing rules, so their outcomes are fixed: a fresh deployment would also try its untried
    # GPU on some of them (exploration, on by default), and which ones depends on whether the GPU is idle just then.
    if os.environ.setdefault("HVR_EXPLORATION_SHARE", "0") == "0":
        print("exploration off for the samples (HVR_EXPLORATION_SHARE=1 make demo: watch the untried GPU tried)")

    from hvr.local.embedded import EmbeddedStack

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStack(Path(tmp), time_scale=time_scale,
                                                                agents=args.agents) as stack:
        api = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {stack.admin_key}"}, timeout=30)
        started: dict[str, float] = {}
        answers: dict[str, JobView | Problem] = {}
        for path in samples:
            started[path.name] = time.monotonic()
            with ApiClient(stack.url, stack.admin_key) as uploads:  # `@file` inputs, relative to the samples
                body = uploads.with_uploads(path.read_bytes(), path.parent)
            response = api.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
            answers[path.name] = (JobView if response.status_code == 202 else Problem).model_validate(response.json())
        finals = _follow(api, answers, timeout_s=180)
        rows = [_row(name, answers[name], finals.get(name), stack, args.out, expected.get(name, {}))
                for name in sorted(answers)]
        campaign_ok = _campaign(api, CAMPAIGN) if CAMPAIGN.exists() else True
        card = _scorecard(api, stack)

    _print(rows)
    print(f"\n{format_scorecard(card)}")
    failures = [row for row in rows if row["problems"]]
    for row in failures:
        print(f"MISMATCH {row['sample']}: {'; '.join(row['problems'])}", file=sys.stderr)
    print(f"\n{len(rows) - len(failures)}/{len(rows)} samples as expected; videos in {args.out}/")
    return 1 if failures or not campaign_ok else 0


def _campaign(api: httpx.Client, path: Path, timeout_s: float = 240) -> bool:
    """The sample campaign through `POST /v1/campaigns`, followed until every item has ended."""

    body, _ = campaign_body(path, None)
    response = api.post("/v1/campaigns", json=body)
    if response.status_code not in (200, 202):
        print(f"campaign refused: HTTP {response.status_code} {response.text[:300]}", file=sys.stderr)
        return False
    campaign = CampaignView.model_validate(response.json())
    deadline = time.monotonic() + timeout_s
    while campaign.status is not CampaignStatus.COMPLETED and time.monotonic() < deadline:
        time.sleep(0.5)
        campaign = CampaignView.model_validate(api.get(f"/v1/campaigns/{campaign.id}").json())
    print(f"\ncampaign {path.name}:")
    print(format_campaign(campaign))
    if campaign.status is not CampaignStatus.COMPLETED:
        print(f"campaign still {campaign.status} after {timeout_s:.0f} s", file=sys.stderr)
        return False
    return True


def _scorecard(api: httpx.Client, stack: Any) -> Scorecard:
    """The studio's scorecard for the demo's window (today, UTC), after seeding one rating per delivered video.
    Nobody has watched these videos, so the seeded score is the offer's catalog stars and every seeded rating is
    stored marked `demo`, which the scorecard counts apart."""
    from router.services.ratings import rate

    deps = stack.deps
    principal = deps.keys.lookup(stack.admin_key)
    listed = api.get("/v1/jobs", params={"status": "succeeded", "limit": "500"}).json()["items"]
    for job in listed:
        offer = deps.catalog.get(job["attempts"][-1]["offer"])
        if offer is not None:
            rate(principal.tenant, job["id"], DEMO_RATER, RatingCreate(score=offer.quality), deps, demo=True)
    today = deps.clock().date().isoformat()
    return Scorecard.model_validate(api.get("/v1/scorecard", params={"from": today, "to": today}).json())


def _follow(api: httpx.Client, answers: dict[str, JobView | Problem], timeout_s: float) -> dict[str, JobView]:
    pending = {name: answer.id for name, answer in answers.items() if isinstance(answer, JobView)}
    finals: dict[str, JobView] = {}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for name, job_id in list(pending.items()):
            job = JobView.model_validate(api.get(f"/v1/jobs/{job_id}").json())
            if job.status.terminal:
                finals[name] = job
                del pending[name]
        time.sleep(0.2)
    if pending:
        print(f"demo: still running after {timeout_s:.0f} s: {', '.join(pending)}", file=sys.stderr)
    return finals


def _row(name: str, answer: JobView | Problem, job: JobView | None, stack: Any, out: Path,
         want: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"sample": name, "status": "", "offer": "", "est": "", "actual": "", "turnaround": "",
                           "file": "", "reason": ""}
    outcome: dict[str, Any]
    if isinstance(answer, Problem):
        first = answer.errors[0] if answer.errors else FieldProblem(field="", message=answer.detail)
        row.update(status="refused", reason=f"HTTP {answer.status} {first.field}: {first.message}")
        outcome = {"status": "refused", "field": first.field}
    elif job is None:
        row["status"] = "timeout"
        outcome = {"status": "timeout"}
    else:
        outcome = _job_row(row, job, stack, out / name.replace(".json", ".mp4"))
    row["problems"] = _compare(outcome, want)
    return row


def _job_row(row: dict[str, Any], job: JobView, stack: Any, target: Path) -> dict[str, Any]:
    attempt = job.attempts[-1] if job.attempts else None
    chosen = job.routing.chosen if job.routing else None
    error = job.error
    on_box = attempt is not None and attempt.target in stack.boxes
    row.update(status=job.status.value, offer=(f"{attempt.offer} @{attempt.target}" if on_box else attempt.offer)
               if attempt else "",
               est=f"${job.cost.estimated_usd}" if job.cost.estimated_usd is not None else "",
               actual=f"${job.cost.actual_usd}")
    if error is None:
        row["reason"] = chosen.reason if chosen else ""
    else:
        detail = error.details[0] if job.status.value == "rejected" and error.details else error.message
        row["reason"] = f"{error.code}: {detail}"
    turnaround = (job.updated_at - job.created_at).total_seconds()
    render = _render_seconds(stack, attempt.target, attempt.id) if attempt else None
    row["turnaround"] = f"{turnaround:.1f}s" + (f" (render {render:.1f}s)" if render is not None else "")
    if job.output is not None and job.output.url:
        target.write_bytes(httpx.get(job.output.url, timeout=30).content)
        row["file"] = str(target)
    return {"status": job.status.value, "offer": attempt.offer if attempt else None,
            "error": error.code if error else None, "provider": attempt.provider.value if attempt else None,
            "reasons": " ".join(error.details) if error else ""}


def _render_seconds(stack: Any, box: str, attempt_id: str) -> float | None:
    """The agent's own wall time for the attempt, to split turnaround into render and router overhead."""
    agent = stack.boxes.get(box, stack.agent)
    if agent is None:
        return None
    from router.providers.agent import AgentProvider

    found = AgentProvider(agent.url, stack.agent_secret).lookup(attempt_id)
    return found.render_s if found else None


def _compare(outcome: dict[str, Any], want: dict[str, Any]) -> list[str]:
    problems = [f"{key} {outcome.get(key)!r} != expected {want[key]!r}"
                for key in ("status", "offer", "error", "field", "provider")
                if key in want and outcome.get(key) != want[key]]
    if "reason" in want and want["reason"] not in outcome.get("reasons", ""):
        problems.append(f"no {want['reason']!r} among the reasons")
    return problems


def _print(rows: list[dict[str, Any]]) -> None:
    columns = ["sample", "status", "offer", "est", "actual", "turnaround", "file"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns) + "  REASON")
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns) + "  " + row["reason"][:110])




if __name__ == "__main__":
    raise SystemExit(main())
