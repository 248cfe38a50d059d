"""`hvr rate` and `hvr scorecard`: rating a delivered video, and the studio's success metrics as a table or a chart.

Registered on the `hvr` command by `register` (hvr/cli.py), as the simulator's command is.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hvr.client import ApiClient
from router.models.rating import MAX_SCORE, MIN_SCORE, RatingView
from router.services.scorecard import Metric, Scorecard

VERDICT_MARK = {"held": "held", "missed": "MISSED", "not_enough_data": "not enough data"}
VERDICT_COLOR = {"held": "seagreen", "missed": "crimson", "not_enough_data": "lightgray"}


def register(commands: Any, api: argparse.ArgumentParser) -> None:
    rate = commands.add_parser("rate", parents=[api], help="rate a delivered video 1-5 (again: replaces your rating)")
    rate.add_argument("job_id")
    rate.add_argument("--score", type=int, required=True, choices=range(MIN_SCORE, MAX_SCORE + 1), metavar="N",
                      help=f"{MIN_SCORE}-{MAX_SCORE}, as the catalog's stars")
    rate.add_argument("--comment")
    rate.add_argument("--preferred-over", metavar="JOB_ID",
                      help="another delivered job of the same request that this one beat")
    rate.set_defaults(run=cmd_rate, client=True)

    scorecard = commands.add_parser("scorecard", parents=[api],
                                    help="the studio's success metrics in a window: held, missed, not enough data")
    scorecard.add_argument("--from", dest="start", type=_day, help="first day (default: the 1st of this month)")
    scorecard.add_argument("--to", dest="end", type=_day, help="last day, inclusive (default: today)")
    scorecard.add_argument("--tenant", help="one tenant (admin keys)")
    scorecard.add_argument("--chart", metavar="PNG", help="also draw each metric against its target")
    scorecard.add_argument("--json", action="store_true", help="the API's Scorecard as JSON")
    scorecard.set_defaults(run=cmd_scorecard, client=True)


def cmd_rate(client: ApiClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"score": args.score}
    if args.comment is not None:
        body["comment"] = args.comment
    if args.preferred_over:
        body["preferred_over"] = args.preferred_over
    rating = client.call(RatingView, "POST", f"/v1/jobs/{quote(args.job_id, safe='')}/rating", json_body=body)
    over = f", preferred over {rating.preferred_over} ({rating.preferred_over_offer})" if rating.preferred_over else ""
    print(f"rated {rating.job_id} ({rating.offer}) {rating.score}/5{over}")
    return 0


def cmd_scorecard(client: ApiClient, args: argparse.Namespace) -> int:
    params = {name: value for name, value in (("from", args.start), ("to", args.end), ("tenant", args.tenant))
              if value}
    answer = client.answer(Scorecard, "GET", "/v1/scorecard", params=params)
    if args.json:
        print(json.dumps(answer.json, indent=2))
    else:
        print(format_scorecard(answer.model))
    if args.chart:
        draw_scorecard(answer.model, Path(args.chart))
        print(f"saved {args.chart}")
    return 0


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from exc


def _value(metric: Metric) -> str:
    if metric.value is None:
        return "-"
    if metric.name.startswith(("usage_share", "gpu_utilization", "wan_preference")):
        return f"{metric.value:.1%}"
    if metric.name.startswith("wan_"):
        return f"{metric.value:+.1%}"
    if metric.name == "cost_per_video_usd":
        return f"${metric.value:.4f}"
    return f"{metric.value:g}"


def format_scorecard(card: Scorecard) -> str:
    scope = f"tenant {card.tenant}" if card.tenant else "every tenant"
    seeded = f", {card.demo_ratings} of them seeded by the demo (not people's)" if card.demo_ratings else ""
    lines = [f"scorecard {card.start} to {card.end}, {scope}: {card.ratings} ratings{seeded}"]
    rows = [(m.name, m.target, _value(m), str(m.n), VERDICT_MARK[m.verdict], m.detail) for m in card.metrics]
    header = ("METRIC", "TARGET", "VALUE", "N", "VERDICT", "")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5])
    return "\n".join(line.rstrip() for line in lines)


def draw_scorecard(card: Scorecard, path: Path) -> None:
    """One bar per metric with a target, coloured by its verdict, its target as a tick beside it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # heavy and only for charts
    from matplotlib.figure import Figure

    judged = [m for m in card.metrics if m.target != "tracked"]
    figure = Figure(figsize=(10, 1 + 0.5 * max(1, len(judged))), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = list(range(len(judged)))
    values = [m.value if m.value is not None else 0.0 for m in judged]
    axes.barh(positions, values, color=[VERDICT_COLOR[m.verdict] for m in judged])
    for y, metric in zip(positions, judged, strict=True):
        axes.annotate(f"{_value(metric)} (n={metric.n}, target {metric.target}): {VERDICT_MARK[metric.verdict]}",
                      (values[y], y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    axes.set_yticks(positions, [m.name for m in judged])
    axes.invert_yaxis()
    axes.axvline(0, color="black", linewidth=0.5)
    axes.set_title(f"the studio's success metrics, {card.start} to {card.end}"
                   + (f" ({card.demo_ratings} demo ratings)" if card.demo_ratings else ""))
    figure.savefig(path, dpi=100)
