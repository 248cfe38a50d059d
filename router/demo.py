"""`make demo`: every sample request through the real worker, moto on loopback and the GPU agent on `sim`.

Prints one row per sample (status, offer, the policy's reason, estimated and actual cost, turnaround split
into router overhead and render, output file), writes the MP4s under ./demo-out/, and exits 1 if any outcome
differs from samples/requests/expected.yaml.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from router.models.common import utcnow
from router.models.job import Job
from router.models.request import VideoRequest, field_errors
from router.policy.catalog import Catalog, load_catalog
from router.policy.context import RoutingContext
from router.policy.engine import route

TENANT = "demo"
LONGEST_RENDER_WALL_S = 8.0


def auto_time_scale(requests: dict[str, VideoRequest], catalog: Catalog) -> float:
    """Scale modelled GPU time so the slowest sample renders in about LONGEST_RENDER_WALL_S of wall time."""
    now = utcnow()
    longest = 1.0
    for request in requests.values():
        chosen = route(request, catalog.offers, RoutingContext(), now).chosen
        if chosen is not None:
            longest = max(longest, (chosen.estimated_ready_at - now).total_seconds())
    return max(1.0, longest / LONGEST_RENDER_WALL_S)


def _outcome(job: Job | None, refusal: list[dict[str, str]] | None) -> dict[str, Any]:
    if refusal is not None:
        return {"status": "refused", "field": refusal[0]["field"], "message": refusal[0]["message"]}
    assert job is not None
    attempt = job.current_attempt
    return {
        "status": job.status.value,
        "offer": attempt.offer if attempt else None,
        "error": job.error.code if job.error else None,
        "reasons": " ".join(job.error.details) if job.error else "",
    }


def _matches(outcome: dict[str, Any], want: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("status", "offer", "error", "field"):
        if key in want and outcome.get(key) != want[key]:
            problems.append(f"{key} {outcome.get(key)!r} != expected {want[key]!r}")
    if "reason" in want and want["reason"] not in outcome.get("reasons", ""):
        problems.append(f"no {want['reason']!r} among the reasons")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=Path("samples/requests"))
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    parser.add_argument("--time-scale", type=float, default=None,
                        help="modelled seconds per wall second (default: the slowest sample renders in ~8 s)")
    args = parser.parse_args(argv)

    expected = yaml.safe_load((args.samples / "expected.yaml").read_text())
    catalog = load_catalog()
    now = utcnow()
    requests: dict[str, VideoRequest] = {}
    refused: dict[str, list[dict[str, str]]] = {}
    for path in sorted(args.samples.glob("*.json")):
        try:
            requests[path.name] = VideoRequest.parse_at_edge(json.loads(path.read_text()), now)
        except ValidationError as exc:
            refused[path.name] = field_errors(exc)
    time_scale = args.time_scale or auto_time_scale(requests, catalog)
    print(f"hvr demo: {len(requests) + len(refused)} samples, time scale {time_scale:.0f}x "
          f"(modelled GPU seconds per wall second)")

    from router.local.stack import LocalStack
    from router.services.submit import accept

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, LocalStack(Path(tmp), time_scale=time_scale) as stack:
        deps = stack.deps
        jobs = {name: accept(request, TENANT, deps) for name, request in requests.items()}

        def all_done() -> bool:
            return all(deps.jobs.get(TENANT, job.id).status.terminal for job in jobs.values())

        if not stack.drain(all_done, timeout_s=180):
            print("demo: timed out waiting for jobs to finish", file=sys.stderr)
        for name in sorted(list(jobs) + list(refused)):
            rows.append(_row(name, jobs.get(name), refused.get(name), deps, args.out, expected.get(name, {})))

    _print(rows)
    failures = [row for row in rows if row["problems"]]
    for row in failures:
        print(f"MISMATCH {row['sample']}: {'; '.join(row['problems'])}", file=sys.stderr)
    print(f"\n{len(rows) - len(failures)}/{len(rows)} samples as expected; videos in {args.out}/")
    return 1 if failures else 0


def _row(name: str, job: Job | None, refusal: list[dict[str, str]] | None, deps: Any, out: Path,
         want: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"sample": name, "est": "", "actual": "", "turnaround": "", "file": "", "reason": ""}
    if job is not None:
        job = deps.jobs.get(TENANT, job.id)
        assert job is not None
        chosen = job.routing.chosen if job.routing else None
        row["est"] = f"${job.cost.estimated_usd}" if job.cost.estimated_usd is not None else ""
        row["actual"] = f"${job.cost.actual_usd}"
        row["reason"] = chosen.reason if chosen and job.status.value == "succeeded" else (
            f"{job.error.code}: {_error_text(job)}" if job.error else "")
        turnaround = (job.updated_at - job.created_at).total_seconds()
        attempt = job.current_attempt
        render = None
        if attempt is not None:
            found = deps.providers[attempt.provider].lookup(attempt.id)
            render = found.render_s if found else None
        row["turnaround"] = f"{turnaround:.1f}s" + (f" (render {render:.1f}s)" if render is not None else "")
        if job.output is not None:
            key = job.output.s3_uri.split("/", 3)[3]
            target = out / name.replace(".json", ".mp4")
            shutil.move(str(deps.artifacts.download(key)), target)
            row["file"] = str(target)
    else:
        assert refusal is not None
        row["reason"] = f"{refusal[0]['field']}: {refusal[0]['message']}"
    outcome = _outcome(job, refusal)
    row.update(status=outcome["status"], offer=outcome.get("offer") or "", problems=_matches(outcome, want))
    return row


def _error_text(job: Job) -> str:
    assert job.error is not None
    # A refusal's first detail says which offer failed which constraint; a failure's message says what broke.
    if job.status.value == "rejected" and job.error.details:
        return job.error.details[0]
    return job.error.message


def _print(rows: list[dict[str, Any]]) -> None:
    columns = ["sample", "status", "offer", "est", "actual", "turnaround", "file", "reason"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns[:-1]}
    print("  ".join(c.upper().ljust(widths.get(c, 0)) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths.get(c, 0)) for c in columns[:-1]) + "  " + row["reason"][:110])


if __name__ == "__main__":
    raise SystemExit(main())
