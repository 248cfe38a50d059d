"""A routing decision without a job: what `POST /v1/quotes` answers."""

from __future__ import annotations

import hashlib

from router.models.api import OfferLearned
from router.models.decision import Decision
from router.models.request import VideoRequest
from router.policy.engine import route
from router.services.context import routing_context
from router.services.deps import Deps
from router.services.learned import candidates_learned
from router.services.ratings import learned_qualities
from router.services.submit import InvalidInput, campaign_errors


def quote(request: VideoRequest, deps: Deps, tenant: str | None = None) -> Decision:
    """Raises InvalidInput for a `campaign_id` that isn't the tenant's: its budget would show in the reasons.
    Uploads aren't checked: a quote reads no input, and may come before the upload."""
    return explained_quote(request, deps, tenant)[0]


def explained_quote(request: VideoRequest, deps: Deps,
                    tenant: str | None = None) -> tuple[Decision, dict[str, OfferLearned]]:
    """The decision, and the render time behind each candidate's estimate: learned beside catalog, from the
    same snapshot the decision used. It may explore as a job would, drawing from the request itself (a job draws
    from its id), so the same request always quotes the same way."""
    errors = campaign_errors(request, tenant, deps) if tenant is not None else []
    if errors:
        raise InvalidInput(errors)
    seed = "quote:" + hashlib.sha256(request.model_dump_json().encode()).hexdigest()
    context = routing_context(deps, tenant=tenant, campaign_id=request.campaign_id, explore_seed=seed)
    decision = route(request, deps.catalog.offers, context, deps.clock())
    return decision, candidates_learned(decision.candidates, deps.catalog.offers, context.learned,
                                        learned_qualities(deps))
