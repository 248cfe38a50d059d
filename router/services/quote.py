"""A routing decision without a job: what `POST /v1/quotes` answers."""

from __future__ import annotations

from router.models.decision import Decision
from router.models.request import VideoRequest
from router.policy.engine import route
from router.services.context import routing_context
from router.services.deps import Deps


def quote(request: VideoRequest, deps: Deps) -> Decision:
    return route(request, deps.catalog.offers, routing_context(deps), deps.clock())
