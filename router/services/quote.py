"""A routing decision without a job: what `POST /v1/quotes` answers."""

from __future__ import annotations

from router.models.decision import Decision
from router.models.request import VideoRequest
from router.policy.engine import route
from router.services.context import routing_context
from router.services.deps import Deps


def quote(request: VideoRequest, deps: Deps, tenant: str | None = None) -> Decision:
    context = routing_context(deps, tenant=tenant, campaign_id=request.campaign_id)
    return route(request, deps.catalog.offers, context, deps.clock())
