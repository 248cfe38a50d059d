"""The comparison as people and programs read it: a Markdown table with hvr's targets checked, the JSON of
issue 9 (`{"workload", "seed", "policies": {name: {...}}}`), and an optional chart (cost against deadline-hit rate
per policy, and each policy's spend over the month)."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

from hvr.sim.compare import CHEAPEST, OPTIMUM, STATIC, Comparison, Metrics

HVR = "hvr"


def _usd(value: Decimal | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _mb(value: int | None) -> str:
    return "unlimited" if value is None else f"{value / 1024:.0f} GB"


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def to_json(comparison: Comparison) -> dict[str, Any]:
    document = {
        "workload": comparison.workload,
        "seed": comparison.seed,
        "videos": comparison.videos,
        "infeasible": comparison.infeasible,
        "start": comparison.start.isoformat().replace("+00:00", "Z"),
        "span_hours": round(comparison.horizon_s / 3600, 2),
        "policies": {name: _policy_json(m, fleet=bool(comparison.boxes)) for name, m in comparison.metrics.items()},
        "targets": targets(comparison),
        "notes": comparison.notes,
    }
    if comparison.boxes:  # only a fleet: a run of the one GPU reads as it did before fleets
        document["boxes"] = [{"name": box.name, "vram_mb": box.vram_mb, "ram_mb": box.ram_mb, "speed": box.speed,
                              "slots": box.slots} for box in comparison.boxes]
    return document


def _policy_json(m: Metrics, fleet: bool = False) -> dict[str, Any]:
    def money(value: Decimal | None) -> str | None:
        return None if value is None else f"{value:.4f}"

    def rounded(value: float | None, places: int = 4) -> float | None:
        return None if value is None else round(value, places)

    return {
        "total_cost_usd": money(m.total_cost_usd),
        "cost_per_video_usd": money(m.cost_per_video_usd),
        "deadline_hit_rate": rounded(m.deadline_hit_rate),
        "quality_violations": m.quality_violations,
        "capability_misses": m.capability_misses,
        "gpu_utilization": rounded(m.gpu_utilization),
        "p50_turnaround_s": rounded(m.p50_turnaround_s, 1),
        "p95_turnaround_s": rounded(m.p95_turnaround_s, 1),
        "cost_ratio_to_optimum": rounded(m.cost_ratio_to_optimum),
        "infeasible_cost_usd": money(m.infeasible_cost_usd),
        "bound_omits_usd": money(m.bound_omits_usd),
        "second_half_bound_omits_usd": money(m.second_half_bound_omits_usd),
        "matched_bound_usd": money(m.matched_bound_usd),
        "cost_ratio_to_matched_bound": rounded(
            float(m.total_cost_usd / m.matched_bound_usd) if m.matched_bound_usd else None),
        "cost_ratio_to_static_rule": rounded(m.cost_ratio_to_static_rule),
        "cost_ratio_to_static_rule_like_for_like": rounded(m.like_for_like_vs_static_rule),
        "cost_ratio_to_static_rule_per_video": rounded(m.per_video_vs_static_rule),
        "videos": m.videos,
        "infeasible": m.infeasible,
        "delivered": m.delivered,
        "on_time": m.on_time,
        "rejected": m.rejected,
        "expired": m.expired,
        "failed": m.failed,
        "offer_mix": m.offer_mix,
        "second_half_cost_ratio_to_optimum": rounded(m.second_half_cost_ratio_to_optimum),
        "weekly": [{"week": w.week, "cost_usd": money(w.cost_usd), "optimum_cost_usd": money(w.optimum_cost_usd),
                    "cost_ratio_to_optimum": rounded(w.cost_ratio_to_optimum),
                    "gpu_utilization": rounded(w.gpu_utilization), "deadline_hit_rate": rounded(w.deadline_hit_rate)}
                   for w in m.weekly],
        **({"vram_violations": m.vram_violations,
            "gpu_utilization_by_box": {name: round(value, 4) for name, value in m.gpu_utilization_by_box.items()}}
           if fleet else {}),
    }


# The static-rule target three ways (see docs/decisions.md): per video delivered is the studio's own yardstick
# ("average cost per video"), so it is the one the verdict rests on; the other two are reported beside the optimum's
# figure: what serving every feasible request on time costs at best, with hindsight.
STATIC_MEASURES = (
    ("cost_ratio_to_static_rule_per_video", "per_video_vs_static_rule"),
    ("cost_ratio_to_static_rule_like_for_like", "like_for_like_vs_static_rule"),
    ("cost_ratio_to_static_rule", "cost_ratio_to_static_rule"),
)


def targets(comparison: Comparison) -> dict[str, Any]:
    """The comparison's targets for hvr (docs/architecture.md, "Numbers it is held to", and issue 14's for
    scenarios): each figure and whether it holds (None where a policy it needs wasn't run)."""
    hvr = comparison.metrics.get(HVR)
    if hvr is None:
        return {}
    goal = comparison.targets
    static, best = comparison.metrics.get(STATIC), comparison.metrics.get(OPTIMUM)
    rate = hvr.deadline_hit_rate
    equal_or_better = static is not None and rate is not None and rate >= (static.deadline_hit_rate or 0.0)
    checks: dict[str, Any] = {
        # The optimum's own rate beside: where hindsight can't reach the target either, a miss says less.
        "deadline_hit_rate": {"value": rate, "target": goal.hit_rate, "holds": _at_least(rate, goal.hit_rate),
                              "optimum": best.deadline_hit_rate if best is not None else None},
        "quality_violations": {"value": hvr.quality_violations, "target": 0, "holds": hvr.quality_violations == 0},
        **({"vram_violations": {"value": hvr.vram_violations, "target": 0, "holds": hvr.vram_violations == 0}}
           if comparison.boxes else {}),
        "cost_ratio_to_optimum": {"value": hvr.cost_ratio_to_optimum, "target": goal.optimum_ratio,
                                  "holds": _at_most(hvr.cost_ratio_to_optimum, goal.optimum_ratio)},
    }
    if goal.second_half_optimum_ratio is not None:
        value = hvr.second_half_cost_ratio_to_optimum
        checks["second_half_cost_ratio_to_optimum"] = {"value": value, "target": goal.second_half_optimum_ratio,
                                                       "holds": _at_most(value, goal.second_half_optimum_ratio)}
    if goal.gpu_share_of_optimum is not None:
        share = hvr.gpu_utilization / best.gpu_utilization if best is not None and best.gpu_utilization else None
        # An optimum that leaves the GPU idle asks nothing of hvr's utilization.
        idle = best is not None and not best.gpu_utilization
        checks["gpu_utilization_share_of_optimum"] = {
            "value": share, "target": goal.gpu_share_of_optimum,
            "holds": True if idle else _at_least(share, goal.gpu_share_of_optimum),
            "optimum": best.gpu_utilization if best is not None else None}
    if goal.cheapest_feasible_ratio is not None:
        cheapest = comparison.metrics.get(CHEAPEST)
        value = (float(hvr.total_cost_usd / cheapest.total_cost_usd)
                 if cheapest is not None and cheapest.total_cost_usd > 0 else None)
        checks["cost_ratio_to_cheapest_feasible"] = {"value": value, "target": goal.cheapest_feasible_ratio,
                                                     "holds": _at_most(value, goal.cheapest_feasible_ratio)}
    for key, attr in STATIC_MEASURES:
        value = getattr(hvr, attr)
        checks[key] = {"value": value, "target": goal.static_ratio,
                       "holds": None if value is None else value <= goal.static_ratio and equal_or_better,
                       "optimum": getattr(best, attr) if best is not None else None}
    return checks


def _at_least(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def _at_most(value: float | None, target: float) -> bool | None:
    return None if value is None else value <= target


def _verdict(check: dict[str, Any]) -> str:
    verdict = {True: "holds", False: "MISSED", None: "not measured"}[check["holds"]]
    reach = check.get("optimum")
    if reach is not None:
        verdict += f" (the offline optimum, serving every feasible request: {reach:.4f})"
    return verdict


def markdown(comparison: Comparison) -> str:
    lines = [
        f"## hvr simulate: {comparison.workload or 'generated workload'} (seed {comparison.seed})",
        "",
        f"{comparison.videos} videos over {comparison.horizon_s / 86400:.1f} days from "
        f"{comparison.start:%Y-%m-%d}; {comparison.infeasible} infeasible (no offer can meet them even idle), "
        "left out of every deadline rate.",
        "",
        "| policy | on time | deadline rate | cost | per video | x optimum | x matched bound | x static: total / "
        "same videos / per video | quality viol. | capability misses | GPU util. | p50 / p95 turnaround |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in comparison.metrics.items():
        matched = float(m.total_cost_usd / m.matched_bound_usd) if m.matched_bound_usd else None
        lines.append(
            f"| {name} | {m.on_time}/{m.feasible} | {_pct(m.deadline_hit_rate)} | {_usd(m.total_cost_usd)} | "
            f"{_usd(m.cost_per_video_usd)} | {_ratio(m.cost_ratio_to_optimum)} | "
            f"{_ratio(matched if name != OPTIMUM else None)} | {_ratio(m.cost_ratio_to_static_rule)} / "
            f"{_ratio(m.like_for_like_vs_static_rule)} / {_ratio(m.per_video_vs_static_rule)} | "
            f"{m.quality_violations} | {m.capability_misses} | "
            f"{_pct(m.gpu_utilization)} | {_hours(m.p50_turnaround_s)} / {_hours(m.p95_turnaround_s)} |")
    spent = [f"{name} {_usd(m.infeasible_cost_usd)}" for name, m in comparison.metrics.items() if m.infeasible_cost_usd]
    if spent:
        lines += ["", "Spent on infeasible requests (in the cost, not in x optimum: the optimum may not serve them): "
                  + ", ".join(spent) + "."]
    omits = [f"{name} {_usd(m.bound_omits_usd)}" for name, m in comparison.metrics.items() if m.bound_omits_usd]
    if omits:
        lines += ["", "Paid where the optimum assumes nothing is (cold starts, attempts that delivered nothing; in the "
                  "cost and in x optimum): " + ", ".join(omits) + "."]
    if comparison.boxes:
        lines += ["", "GPU boxes: " + ", ".join(
            f"{box.name} ({_mb(box.vram_mb)} VRAM, {box.speed:g}x the render time, {box.slots} "
            f"slot{'s' if box.slots > 1 else ''})" for box in comparison.boxes) + ".", "",
                  "| policy | " + " | ".join(f"{box.name} util." for box in comparison.boxes) + " | VRAM violations |",
                  "|---|" + "---:|" * (len(comparison.boxes) + 1)]
        lines += [f"| {name} | " + " | ".join(_pct(m.gpu_utilization_by_box.get(box.name))
                                              for box in comparison.boxes) + f" | {m.vram_violations} |"
                  for name, m in comparison.metrics.items()]
    lines += ["", "Offer mix (videos delivered):", ""]
    for name, m in comparison.metrics.items():
        mix = ", ".join(f"{offer} {count}" for offer, count in m.offer_mix.items()) or "none"
        lines.append(f"- **{name}**: {mix}; rejected {m.rejected}, expired {m.expired}, failed {m.failed}")
    hvr = comparison.metrics.get(HVR)
    if hvr is not None and hvr.weekly:
        lines += ["", "hvr week by week (costs by arrival, against the whole-run optimum's on the same requests; "
                  f"second half {_ratio(hvr.second_half_cost_ratio_to_optimum)} the optimum):", "",
                  "| week | cost | optimum | x optimum | GPU util. | deadline rate |",
                  "|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {w.week} | {_usd(w.cost_usd)} | {_usd(w.optimum_cost_usd)} | {_ratio(w.cost_ratio_to_optimum)} "
                  f"| {_pct(w.gpu_utilization)} | {_pct(w.deadline_hit_rate)} |" for w in hvr.weekly]
    checks = targets(comparison)
    if checks:
        lines += ["", "Targets for hvr:", ""]
        for key, check in checks.items():
            value = check["value"]
            shown = value if isinstance(value, int) else (f"{value:.4f}" if value is not None else "-")
            lines.append(f"- {key}: {shown} (target {check['target']}): {_verdict(check)}")
    lines += ["", *[f"_{note}_" for note in comparison.notes]]
    return "\n".join(lines) + "\n"


def chart(comparison: Comparison, path: str | Path) -> None:
    """Left: total cost against deadline-hit rate, one point per policy. Right: cumulative spend over the run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # heavy and only for charts
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 5), layout="constrained")
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    # Policies that land on one another (hvr and cheapest-feasible often do) stay apart by marker and line style,
    # and hvr is drawn on top, heavier.
    styles = itertools.cycle([("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", "-"), ("P", "--")])
    for name, m in comparison.metrics.items():
        marker, line = next(styles)
        ours = name == HVR
        rate = m.deadline_hit_rate or 0.0
        left.scatter([100 * rate], [float(m.total_cost_usd)], s=110 if ours else 50, marker=marker, label=name,
                     zorder=3 if ours else 2, facecolors="none" if ours else None, linewidths=2 if ours else 1,
                     edgecolors="black" if ours else None)
        running, xs, ys = Decimal(0), [comparison.start], [0.0]
        for when, cost in m.spend:
            running += cost
            xs.append(when)
            ys.append(float(running))
        right.step(xs, ys, where="post", label=name, linestyle=line, linewidth=2.5 if ours else 1.2,
                   zorder=3 if ours else 2)
    left.set_xlabel("deadline hit rate, % of feasible requests")
    left.set_ylabel("total cost, USD")
    left.set_title("cost against deadlines met")
    left.grid(alpha=0.3)
    left.legend(loc="best", fontsize="small")
    right.set_ylabel("cumulative spend, USD")
    right.set_title("spend over the run")
    right.legend(loc="upper left", fontsize="small")
    right.tick_params(axis="x", labelrotation=30)
    figure.savefig(path, dpi=100)
