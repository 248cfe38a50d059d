"""A fleet as the campaign plan's one GPU (router.services.campaigns.fleet_pool)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from router.models.common import Circuit
from router.policy.context import TargetState
from router.policy.localqueue import Work
from router.services.campaigns import fleet_pool

NOW = datetime(2026, 12, 4, tzinfo=UTC)


def test_the_boxes_that_take_work_pool_their_slots_and_queues_in_run_order() -> None:
    busy = TargetState(name="5090", slots=1, queue=(Work(left_s=600, running=True),
                                                    Work(left_s=300, due=NOW + timedelta(hours=2))))
    idle = TargetState(name="4090", slots=2)
    late = TargetState(name="3090", slots=1, queue=(Work(left_s=100, due=NOW + timedelta(hours=1)),))
    dead = TargetState(name="3080", up=False, slots=4, queue=(Work(left_s=9000, running=True),))
    tripped = TargetState(name="3080-2", circuit=Circuit.OPEN, slots=4)
    pool = fleet_pool([busy, idle, late, dead, tripped])
    assert pool.up and pool.slots == 4  # the down box and the one whose circuit is open hold nothing for the plan
    assert [w.left_s for w in pool.queue] == [600, 100, 300]  # running, then by deadline
    assert pool.queue_wait_s == (600 + 300 + 100) / 4


def test_a_fleet_with_no_box_taking_work_is_down_for_the_plan() -> None:
    pool = fleet_pool([TargetState(name="5090", up=False), TargetState(name="4090", circuit=Circuit.OPEN)])
    assert not pool.up and pool.queue == ()
