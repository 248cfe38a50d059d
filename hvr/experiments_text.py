"""`hvr experiments`: define an A/B experiment, list them, read one's results (admin keys).

Registered on the `hvr` command by `register` (hvr/cli.py), as `hvr rate` and `hvr scorecard` are.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from hvr.client import ApiClient
from router.models.experiment import Stickiness
from router.policy.experiment_results import ExperimentResults, Interval
from router.services.experiments import ExperimentList, ExperimentView


def register(commands: Any, api: argparse.ArgumentParser) -> None:
    experiments = commands.add_parser("experiments", parents=[api],
                                      help="A/B experiments between two arms (admin): list, show, put")
    experiments.add_argument("--json", action="store_true", help="the API's answer as JSON")
    experiments.set_defaults(run=cmd_list, client=True)
    verbs = experiments.add_subparsers(dest="experiments_command", metavar="COMMAND")

    show = verbs.add_parser("show", parents=[api], help="one experiment and its results, with a verdict")
    show.add_argument("name")
    show.add_argument("--json", action="store_true", help="the API's answer as JSON")
    show.set_defaults(run=cmd_show, client=True)

    put = verbs.add_parser("put", parents=[api], help="define or redefine an experiment")
    put.add_argument("name")
    put.add_argument("--arms", nargs=2, required=True, metavar=("A", "B"),
                     help="each an offer id (local/wan21-1.3b) or a model family (wan, veo, animatediff)")
    put.add_argument("--share", type=float, required=True, help="of the eligible requests, 0-1")
    put.add_argument("--stickiness", choices=[s.value for s in Stickiness], default=Stickiness.CAMPAIGN.value,
                     help="what one draw assigns (default: campaign)")
    put.add_argument("--spend-cap", required=True, metavar="USD", help="the most its renders may be estimated to cost")
    put.add_argument("--ends", required=True, type=_end, metavar="DAY_OR_TIME",
                     help="no job is assigned after this (YYYY-MM-DD: that day's midnight UTC)")
    put.add_argument("--paired", action="store_true", help="render each assigned request on both arms")
    put.add_argument("--description")
    put.add_argument("--json", action="store_true", help="the API's answer as JSON")
    put.set_defaults(run=cmd_put, client=True)


def _end(text: str) -> str:
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).isoformat()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD) or a time (ISO 8601)") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def cmd_list(client: ApiClient, args: argparse.Namespace) -> int:
    answer = client.answer(ExperimentList, "GET", "/v1/experiments")
    if args.json:
        print(json.dumps(answer.json, indent=2))
        return 0
    if not answer.model.experiments:
        print("no experiments: define one with `hvr experiments put NAME --arms A B ...`")
        return 0
    for found in answer.model.experiments:
        print(summary(found))
    return 0


def cmd_show(client: ApiClient, args: argparse.Namespace) -> int:
    answer = client.answer(ExperimentView, "GET", f"/v1/experiments/{quote(args.name, safe='')}")
    print(json.dumps(answer.json, indent=2) if args.json else format_experiment(answer.model))
    return 0


def cmd_put(client: ApiClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"arms": args.arms, "share": args.share, "stickiness": args.stickiness,
                            "spend_cap_usd": args.spend_cap, "ends_at": args.ends, "paired": args.paired}
    if args.description:
        body["description"] = args.description
    answer = client.answer(ExperimentView, "PUT", f"/v1/experiments/{quote(args.name, safe='')}", json_body=body)
    print(json.dumps(answer.json, indent=2) if args.json else summary(answer.model))
    return 0


def summary(found: ExperimentView) -> str:
    exp = found.experiment
    arms = " vs ".join(f"{arm} ({len(found.offers.get(name, []))} offers)"
                       for name, arm in zip(("a", "b"), exp.arms, strict=True))
    return (f"{exp.name}: {arms}, {exp.share:.0%} of eligible requests by {exp.stickiness.value}"
            f"{', paired' if exp.paired else ''}; {found.status}, {found.assigned} jobs, "
            f"${found.committed_usd} of ${exp.spend_cap_usd} committed, ends {exp.ends_at:%Y-%m-%d %H:%M}Z")


def format_experiment(found: ExperimentView) -> str:
    lines = [summary(found)]
    results = found.results
    if results is None:
        return lines[0]
    lines.append(format_results(results))
    if found.routed_elsewhere:
        lines.append(f"{found.routed_elsewhere} assigned jobs went elsewhere: their arm stopped being feasible "
                     "before their first attempt")
    return "\n".join(lines)


def _between(interval: Interval | None, form: str) -> str:
    return "" if interval is None else f" ({form.format(interval.low)}-{form.format(interval.high)})"


def format_results(results: ExperimentResults) -> str:
    """Each arm's figures with their intervals, the preference share and the verdict (the simulator prints it too)."""
    pct = f"{results.confidence:.0%}"
    rows = [("ARM", "ASSIGNED", "DELIVERED", "FAILED", f"MEAN SCORE ({pct})", "$/VIDEO", f"P50 TURNAROUND ({pct})")]
    for arm in results.arms:
        rows.append((
            f"{arm.name}: {arm.arm}", str(arm.assigned), str(arm.delivered),
            "-" if arm.failure_rate is None else f"{arm.failed} ({arm.failure_rate:.0%})",
            "-" if arm.mean_score is None else
            f"{arm.mean_score:.2f}{_between(arm.mean_score_interval, '{:.2f}')} n={arm.ratings}",
            "-" if arm.cost_per_video_usd is None else f"${arm.cost_per_video_usd}",
            "-" if arm.turnaround_p50_s is None else
            f"{arm.turnaround_p50_s:.0f} s{_between(arm.turnaround_p50_interval, '{:.0f}')}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    prefer = results.preference
    if prefer.pairs and prefer.share_a is not None:
        lines.append(f"preference: arm a won {prefer.a_won} of {prefer.pairs} pairs, {prefer.share_a:.0%}"
                     f"{_between(prefer.share_a_interval, '{:.0%}')}")
    else:
        lines.append("preference: no rated pairs yet")
    verdict = results.verdict
    lines.append(f"verdict: {verdict.outcome.replace('_', ' ')} ({verdict.basis}): {verdict.detail}")
    return "\n".join(lines)
