"""The embedded stack's modelled time: how many modelled seconds pass per wall second, so that the slowest sample
request renders in seconds while every figure it reports (render time, GPU-seconds billed) stays modelled."""

from __future__ import annotations

import json
from pathlib import Path

from router.models.common import utcnow
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.policy.context import RoutingContext
from router.policy.engine import route

SAMPLES = Path("samples/requests")
LONGEST_RENDER_WALL_S = 8.0


def default_time_scale(samples: Path = SAMPLES) -> float:
    """Modelled seconds per wall second such that the slowest valid sample renders in about 8 s."""
    catalog, now, longest = load_catalog(), utcnow(), 1.0
    for path in samples.glob("*.json"):
        try:
            request = VideoRequest.parse_at_edge(json.loads(path.read_text()), now)
        except ValueError:
            continue
        chosen = route(request, catalog.offers, RoutingContext(), now).chosen
        if chosen is not None:
            longest = max(longest, (chosen.estimated_ready_at - now).total_seconds())
    return max(1.0, longest / LONGEST_RENDER_WALL_S)
