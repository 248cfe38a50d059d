"""Rating a delivered job (`POST /v1/jobs/{id}/rating`) and listing a job's ratings.

One rating per job per rater key (a second one replaces the first); only a succeeded job of the caller's tenant can
be rated. A pairwise preference names another succeeded job of the same tenant with the same request content
(`models.rating.content_fingerprint`): a preference between two different prompts says nothing about the offers.
Whatever is refused stores nothing.
"""

from __future__ import annotations

import hashlib
from datetime import date

from router.errors import CONTRACT, Conflict, InvalidRequest
from router.models.job import Attempt, AttemptStatus, Job, JobStatus
from router.models.rating import LearnedQuality, Rating, RatingCreate, RatingList, content_fingerprint
from router.policy.quality import learned_quality
from router.services.deps import Deps
from router.store.errors import NotFound

RATER_DIGITS = 16  # of the key's SHA-256: tells raters apart, and the keys table keeps the whole hash anyway


class NotRatable(Conflict):
    """The job hasn't delivered a video (yet, or ever)."""


def rater_of(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:RATER_DIGITS]


def delivered_by(job: Job) -> Attempt:
    """The attempt that delivered the job's video: its last succeeded one (a long video's last segment)."""
    return next(a for a in reversed(job.attempts) if a.status is AttemptStatus.SUCCEEDED)


def delivered_on(job: Job) -> date:
    attempt = delivered_by(job)
    return (attempt.ended_at or job.updated_at).date()


def _succeeded(tenant: str, job_id: str, deps: Deps) -> Job:
    job = deps.jobs.get(tenant, job_id)  # NotFound: no such job, or another tenant's
    if job.status is not JobStatus.SUCCEEDED or not any(a.status is AttemptStatus.SUCCEEDED for a in job.attempts):
        raise NotRatable(f"job {job_id} is {job.status.value}: only a succeeded job can be rated",
                         errors=[{"field": "job_id", "message": f"is {job.status.value}, not succeeded"}])
    return job


def _preferred_over(job: Job, other_id: str, deps: Deps) -> Job:
    def refused(message: str) -> InvalidRequest:
        return InvalidRequest(f"preferred_over: {message}", detail=CONTRACT,
                              errors=[{"field": "preferred_over", "message": message}])

    if other_id == job.id:
        raise refused("names the rated job itself")
    try:
        other = deps.jobs.get(job.tenant, other_id)
    except NotFound:
        raise refused("names no job of this tenant") from None
    if other.status is not JobStatus.SUCCEEDED or not any(a.status is AttemptStatus.SUCCEEDED
                                                          for a in other.attempts):
        raise refused(f"names a job that is {other.status.value}, not succeeded")
    if content_fingerprint(other.request) != content_fingerprint(job.request):
        raise refused("names a job of another request (its prompt, mode or inputs differ)")
    return other


def rate(tenant: str, job_id: str, rater: str, body: RatingCreate, deps: Deps, demo: bool = False) -> Rating:
    job = _succeeded(tenant, job_id, deps)
    other = _preferred_over(job, body.preferred_over, deps) if body.preferred_over else None
    attempt = delivered_by(job)
    rating = Rating(tenant=tenant, job_id=job.id, rater=rater, score=body.score, comment=body.comment,
                    preferred_over=other.id if other else None,
                    preferred_over_offer=delivered_by(other).offer if other else None,
                    offer=attempt.offer, provider=attempt.provider, model=_model_of(attempt.offer, deps),
                    delivered_on=delivered_on(job), rated_at=deps.clock(), demo=demo)
    deps.ratings.put(rating)
    return rating


def ratings_of(tenant: str, job_id: str, deps: Deps) -> RatingList:
    """Every rater's rating of a job of the tenant's (none before it succeeded)."""
    job = deps.jobs.get(tenant, job_id)
    if not any(a.status is AttemptStatus.SUCCEEDED for a in job.attempts) or job.status is not JobStatus.SUCCEEDED:
        return RatingList(job_id=job.id, ratings=[])
    found = deps.ratings.for_job(tenant, job.id, delivered_on(job))
    return RatingList(job_id=job.id, ratings=[rating.view() for rating in found])


def learned_qualities(deps: Deps) -> dict[str, LearnedQuality]:
    """Every offer's quality from its ratings beside its stars, as `GET /v1/providers` and quotes show it."""
    tallies = deps.ratings.tallies()
    minimum = deps.settings.quality_min_ratings
    return {offer.id: learned_quality(offer, tallies.get(offer.id), minimum) for offer in deps.catalog.offers}


def _model_of(offer_id: str, deps: Deps) -> str:
    offer = deps.catalog.get(offer_id)
    return offer.model if offer is not None else offer_id.partition("/")[2]
