"""Long-form delivery in the engine (pure): which offers may chain segments, how a video is split, what it costs,
and what a long-form job's next attempt is sent for."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from router.models.common import Mode, ProviderKind
from router.models.decision import DeliveredSpec
from router.models.job import Attempt, AttemptStatus, Job, JobStatus, Segment, Segments
from router.models.offer import Offer
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.policy.constraints import deliver, estimate
from router.policy.context import RoutingContext
from router.policy.engine import route

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
CATALOG = load_catalog()


def offer(offer_id: str) -> Offer:
    return next(o for o in CATALOG.offers if o.id == offer_id)


def request(**fields: object) -> VideoRequest:
    return VideoRequest.parse_at_edge({"mode": "t2v", "prompt": "a long walk", **fields}, NOW)


def test_a_three_minute_video_is_split_into_the_fewest_equal_segments_one_render_can_make() -> None:
    wan = offer("local/wan21-1.3b")
    spec = deliver(wan, request(duration_s=180), (832, 480))
    assert spec.segments == 36 and spec.segment_frames == 81 and spec.frames == 36 * 81  # 2880 frames wanted
    assert spec.first_segment().frames == 81 and spec.first_segment().segments == 1
    assert abs(spec.duration_s - 180) < 0.05 * 180


def test_a_video_one_render_can_make_is_not_split() -> None:
    spec = deliver(offer("local/wan21-1.3b"), request(duration_s=5), (832, 480))
    assert spec.segments == 1 and spec.frames == 81


def test_each_segment_is_priced_and_timed_as_a_render_of_its_own() -> None:
    wan = offer("local/wan21-1.3b")
    whole = deliver(wan, request(duration_s=180), (832, 480))
    one = estimate(wan, whole.first_segment(), None, None, NOW)
    all_of_it = estimate(wan, whole, None, None, NOW)
    assert one is not None and all_of_it is not None
    assert all_of_it.compute_p50_s == pytest.approx(36 * one.compute_p50_s)  # each pays its own overhead
    assert abs(all_of_it.cost_p50 - 36 * one.cost_p50) <= Decimal("0.0036")


def test_an_offer_without_long_form_refuses_a_video_longer_than_its_render_naming_the_duration() -> None:
    decision = route(request(duration_s=90, model="local/animatediff-sd15", resolution="512x512", aspect_ratio="1:1",
                             quality="draft"),
                     CATALOG.offers, RoutingContext(), NOW)
    [animatediff] = [c for c in decision.candidates if c.offer == "local/animatediff-sd15"]
    assert decision.chosen is None and [r.split(":")[0] for r in map(str, animatediff.reasons)] == ["duration"]


def test_long_form_stops_at_the_offers_own_limit() -> None:
    wan = offer("local/wan21-1.3b")
    assert wan.long_form is not None
    shorter = wan.model_copy(update={"long_form": wan.long_form.model_copy(update={"max_duration_s": 60.0})})
    assert deliver(shorter, request(duration_s=61), (832, 480)).segments == 1  # clamped: refused as too short
    assert deliver(shorter, request(duration_s=60), (832, 480)).segments == 12


def test_a_request_longer_than_five_minutes_is_refused_at_the_edge_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        request(duration_s=301)
    assert caught.value.errors()[0]["loc"] == ("duration_s",)


def test_an_offer_must_be_able_to_continue_in_the_mode_its_long_form_names() -> None:
    wan = offer("local/wan21-1.3b").model_dump()
    with pytest.raises(ValidationError, match="continue_mode i2v is not one of its modes"):
        Offer.model_validate({**wan, "modes": ["t2v"]})


def test_a_long_form_job_with_segments_done_sends_the_rest_as_an_i2v_from_the_last_frame() -> None:
    asked = request(duration_s=12, max_cost_usd="5", camera=None, resolution="480p")
    job = Job(id="job_1", tenant="acme", status=JobStatus.ROUTED, created_at=NOW, updated_at=NOW, request=asked,
              segments=Segments(width=832, height=480, fps=16.0, frames=195, done=[
                  Segment(attempt_id="att_1_1", s3_uri="s3://b/outputs/acme/job_1/att_1_1.mp4", frames=65,
                          last_frame="s3://b/uploads/acme/job_1-att_1_1-last.png")]))
    assert job.work_request() is not asked
    rest = job.work_request()
    assert (rest.mode, rest.image, rest.resolution, rest.fps) == (
        Mode.I2V, "s3://b/uploads/acme/job_1-att_1_1-last.png", "832x480", 16.0)
    assert rest.duration_s == pytest.approx(130 / 16)
    assert rest.max_cost_usd == Decimal("5")  # nothing spent yet in this job's record
    untouched = job.model_copy(update={"segments": None})
    assert untouched.work_request() is asked


def attempt(n: int, offer_id: str, status: AttemptStatus) -> Attempt:
    return Attempt(n=n, id=f"att_1_{n}", offer=offer_id, provider=ProviderKind.RUNPOD, target="runpod", status=status,
                   started_at=NOW, delivered=DeliveredSpec(832, 480, 65, 16.0), estimated_cost_usd=Decimal("0.1"))


def test_the_rest_stays_on_the_model_that_rendered_the_last_segment_unless_a_try_since_failed() -> None:
    done = Segment(attempt_id="att_1_1", s3_uri="s3://b/k.mp4", frames=65, last_frame="s3://b/uploads/acme/f.png")
    job = Job(id="job_1", tenant="acme", status=JobStatus.ROUTED, created_at=NOW, updated_at=NOW,
              request=request(duration_s=12), attempts=[attempt(1, "runpod/wan21-14b-comfy", AttemptStatus.SUCCEEDED)],
              segments=Segments(width=832, height=480, fps=16.0, frames=195, done=[done]))
    assert job.work_request().model == "runpod/wan21-14b-comfy"  # no change of look at the join
    job.attempts.append(attempt(2, "runpod/wan21-14b-comfy", AttemptStatus.FAILED))
    assert job.work_request().model is None  # the fallback may continue it elsewhere
