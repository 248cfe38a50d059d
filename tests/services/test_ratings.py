"""Rating delivered jobs through the service, on the stores' twins: who may rate what, what a preference may name,
replacement, and the routing context reading what the ratings say once there are enough of them."""

from __future__ import annotations

import pytest

from router.errors import Conflict, InvalidRequest, NotFound
from router.models.common import ProviderKind, new_id
from router.models.job import Job, JobStatus
from router.models.rating import RatingCreate, ScoreTally
from router.models.request import VideoRequest
from router.services import submit
from router.services.context import routing_context
from router.services.ratings import learned_qualities, rate, ratings_of
from tests.twins import ScriptedVeo, Twins, twins

REQUEST = {"mode": "t2v", "prompt": "a lighthouse at dusk", "resolution": "720p", "duration_s": 4,
           "deadline_s": 6 * 3600}
CRASHES = ["crash"] * 6  # every try of a job fails


def world(endings: list[str], min_ratings: int = 30) -> Twins:
    return twins({ProviderKind.VEO: ScriptedVeo(endings)}, HVR_EXPLORATION_SHARE="0",
                 HVR_QUALITY_MIN_RATINGS=str(min_ratings))


def job(w: Twins, tenant: str = "acme", **fields: object) -> Job:
    accepted = submit.accept(VideoRequest.parse_at_edge({**REQUEST, **fields}), tenant, w.deps)
    w.run()
    return w.jobs.get(tenant, accepted.id)


def score(n: int, **fields: object) -> RatingCreate:
    return RatingCreate.model_validate({"score": n, **fields})


def test_a_succeeded_job_is_rated_and_its_offer_tallied() -> None:
    w = world(["ok"])
    done = job(w)
    rating = rate("acme", done.id, "k1", score(4, comment="crisp"), w.deps)
    ended = done.attempts[-1].ended_at
    assert ended is not None and rating.offer == done.attempts[-1].offer and rating.delivered_on == ended.date()
    assert [r.score for r in ratings_of("acme", done.id, w.deps).ratings] == [4]
    assert w.deps.ratings.tallies() == {rating.offer: ScoreTally(n=1, total=4, squares=16)}


def test_another_tenants_job_is_not_found_and_nothing_is_stored() -> None:
    w = world(["ok"])
    done = job(w)
    with pytest.raises(NotFound):
        rate("beta", done.id, "k1", score(5), w.deps)
    assert w.deps.ratings.tallies() == {}


def test_a_job_that_has_not_succeeded_is_a_conflict_naming_job_id_and_nothing_is_stored() -> None:
    w = world(CRASHES)
    failed = job(w)
    assert failed.status is JobStatus.FAILED
    with pytest.raises(Conflict) as refused:
        rate("acme", failed.id, "k1", score(5), w.deps)
    assert refused.value.status == 409 and refused.value.errors[0]["field"] == "job_id"
    assert w.deps.ratings.tallies() == {} and ratings_of("acme", failed.id, w.deps).ratings == []


def test_a_second_rating_by_the_same_key_replaces_the_first() -> None:
    w = world(["ok"])
    done = job(w)
    rate("acme", done.id, "k1", score(2), w.deps)
    rate("acme", done.id, "k2", score(3), w.deps)
    rate("acme", done.id, "k1", score(5), w.deps)
    assert sorted(r.score for r in ratings_of("acme", done.id, w.deps).ratings) == [3, 5]
    [tally] = w.deps.ratings.tallies().values()
    assert tally == ScoreTally(n=2, total=8, squares=34)


def test_a_preference_names_another_delivered_job_of_the_same_request() -> None:
    w = world(["ok", "ok", "ok"])
    first, second = job(w), job(w)
    other_prompt = job(w, prompt="a lighthouse at noon")
    theirs = world(["ok"])
    theirs.deps.new_id = new_id  # a twin world counts its ids from 1; another tenant's job must not share one with w's
    rating = rate("acme", second.id, "k1", score(4, preferred_over=first.id), w.deps)
    assert rating.preferred_over == first.id and rating.preferred_over_offer == first.attempts[-1].offer
    for bad, message in ((first.id, "itself"), (other_prompt.id, "another request"),
                         (job(theirs).id, "no job of this tenant")):
        with pytest.raises(InvalidRequest) as refused:
            rate("acme", first.id, "k1", score(4, preferred_over=bad), w.deps)
        assert refused.value.errors[0]["field"] == "preferred_over" and message in refused.value.errors[0]["message"]
    assert ratings_of("acme", first.id, w.deps).ratings == []  # nothing stored on refusal


def test_the_routing_context_reads_learned_quality_once_there_are_enough_ratings() -> None:
    w = world(["ok"], min_ratings=3)
    done = job(w)
    offer = done.attempts[-1].offer
    for n, rater in enumerate(("k1", "k2")):
        rate("acme", done.id, rater, score(1 + n), w.deps)
    assert routing_context(w.deps).quality == {} and not learned_qualities(w.deps)[offer].in_use
    rate("acme", done.id, "k3", score(2), w.deps)
    assert routing_context(w.deps).quality[offer] == pytest.approx(learned_qualities(w.deps)[offer].value)
    assert learned_qualities(w.deps)[offer].in_use and learned_qualities(w.deps)[offer].ratings == 3
