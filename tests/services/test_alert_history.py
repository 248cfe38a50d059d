"""Budget alerts are kept as they happen: each threshold a budget crosses and each spend mode a rule moves, once,
however often the spend crosses them again (a redelivered settle, a cost the budget never held, hvr's own alert
coming back over SNS); on the stores' twins (tests/twins.py)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from router.models.budget import BudgetUpdate, SpendMode, period_of
from router.models.common import ProviderKind
from router.models.request import VideoRequest
from router.services import budget_alerts, money, submit
from router.services.quote import quote
from tests.twins import ScriptedVeo, Twins, twins

REQUEST = {"mode": "t2v", "prompt": "a lighthouse at dusk", "resolution": "720p", "duration_s": 4,
           "deadline_s": 6 * 3600}
MID_MONTH = datetime(2026, 12, 4, 12, tzinfo=UTC)
PERIOD = period_of(MID_MONTH)
EVENTS = Path(__file__).resolve().parents[1] / "events"


def world_with_budget(videos: int) -> tuple[Twins, Decimal]:
    """A tenant budget of exactly two videos' estimate, alerting at 50 % and 100 %."""
    world = twins({ProviderKind.VEO: ScriptedVeo(["ok"] * videos)}, clock=lambda: MID_MONTH,
                  HVR_EXPLORATION_SHARE="0")
    chosen = quote(VideoRequest.parse_at_edge(REQUEST), world.deps, "acme").chosen
    assert chosen is not None
    per_video = chosen.estimated_cost_p90_usd
    money.set_budget(world.deps, "tenant:acme", BudgetUpdate(limit_usd=2 * per_video, thresholds=[0.5, 1.0]),
                     MID_MONTH, "api:ops")
    return world, per_video


def render(world: Twins) -> None:
    submit.accept(VideoRequest.parse_at_edge(REQUEST), "acme", world.deps)
    world.run()


def kept(world: Twins) -> Counter[tuple[str, float | None, SpendMode | None]]:
    alerts, cursor = world.deps.alert_history.list(None, None, limit=500)
    assert cursor is None
    return Counter((a.kind, a.threshold, a.mode) for a in alerts)


def test_settles_crossing_50_and_100_percent_keep_two_threshold_alerts_and_one_mode_move() -> None:
    world, per_video = world_with_budget(2)
    render(world)
    assert kept(world) == Counter({("threshold", 0.5, None): 1})
    render(world)
    expected = Counter({("threshold", 0.5, None): 1, ("threshold", 1.0, None): 1,
                        ("spend_mode", 1.0, SpendMode.LOCAL_ONLY): 1})
    assert kept(world) == expected

    # Crossed again: the last settle redelivered, and a cost the budget never held (150 % now).
    rows = world.deps.ledger.for_period(PERIOD)
    money.charge(world.deps, rows[-1])
    money.charge(world.deps, rows[-1].model_copy(update={"attempt_id": "att_by_hand", "job_id": "job_by_hand"}))
    budget = world.deps.budgets.get_many(["tenant:acme"], PERIOD)["tenant:acme"]
    assert budget.spent_usd == 3 * per_video and budget.spend_mode is SpendMode.LOCAL_ONLY
    # hvr's own threshold alerts come back over SNS (budget_alerts): the mode has moved already.
    for message, _ in world.alerts.published:
        notice = budget_alerts.parse(message)
        assert notice is not None and budget_alerts.apply(notice, world.deps, MID_MONTH) is None
    assert kept(world) == expected
    assert len(world.alerts.published) == 2  # the SNS publish is as it was: once per threshold

    alerts, _ = world.deps.alert_history.list(["tenant:acme"], PERIOD)
    by_kind = {(a.kind, a.threshold): a for a in alerts}
    half, moved = by_kind[("threshold", 0.5)], by_kind[("spend_mode", 1.0)]
    assert (half.spent_usd, half.limit_usd, half.at) == (per_video, 2 * per_video, MID_MONTH)
    assert half.source == "threshold 50% of limit (50% spent)"
    assert (moved.spent_usd, moved.source) == (2 * per_video, "threshold 100% of limit")
    assert world.deps.alert_history.list(["tenant:beta"], None) == ([], None)


def test_an_aws_budgets_notice_that_moves_a_mode_is_kept_once() -> None:
    world, _ = world_with_budget(0)
    message = json.loads((EVENTS / "aws_budgets_actual.json").read_text())["Records"][0]["Sns"]["Message"]
    notice = budget_alerts.parse(message)
    assert notice is not None and notice.scope == "tenant:acme"
    assert budget_alerts.apply(notice, world.deps, MID_MONTH) is SpendMode.ECONOMY
    assert budget_alerts.apply(notice, world.deps, MID_MONTH) is None  # delivered twice: nothing moves
    [moved] = world.deps.alert_history.list(None, None)[0]
    assert (moved.kind, moved.mode, moved.threshold, moved.scope) == ("spend_mode", SpendMode.ECONOMY, 0.8,
                                                                      "tenant:acme")
    assert moved.source == notice.source and moved.spent_usd == 0
