"""Budget alerts as they happened: thresholds crossed and spend modes moved (docs/architecture.md, "Money").

A member key sees its own tenant's scopes, `tenant:<its tenant>` and `campaign:<id>` of its own campaigns; `global`
and every other scope need an admin key, which sees them all. Asking for a scope the key may not see is a 403
naming `scope`.
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from functions.api.http import decode_cursor, documented, encode_cursor, json_response, principal, unstated
from router.errors import Forbidden
from router.models.budget import SCOPE_PATTERN, AlertList
from router.services import money
from router.services.deps import Deps, default_deps
from router.store.keys import Principal

router = Router()

PERIOD_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
CAMPAIGN = "campaign:"


@router.get("/v1/alerts", summary="Budget alerts, newest first: thresholds crossed and spend modes moved",
            **unstated({"cursor": "must be a next_cursor of this same listing (scope)"}),
            responses=documented({200: "a page of alerts"}, {400: None, 403: (
                "the key lacks the role the route needs, or a member key asked for a scope that is not its "
                "tenant's or one of its campaigns'")}))
def list_alerts(
    scope: Annotated[str | None, Query(pattern=SCOPE_PATTERN.pattern, description=(
        "global, tenant:<id> or campaign:<id> (default: every scope the key may see)"))] = None,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN, description="a budget period, YYYY-MM")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048, description="next_cursor of the previous page")] = None,
) -> Response[AlertList]:
    deps = default_deps()
    scopes = visible_scopes(principal(router), scope, deps)
    start = decode_cursor(cursor) if cursor else None
    alerts, last = deps.alert_history.list(scopes, period, limit=limit, cursor=start)
    next_cursor = encode_cursor(last) if last else None
    return json_response(AlertList(alerts=alerts, next_cursor=next_cursor))


def visible_scopes(caller: Principal, scope: str | None, deps: Deps) -> list[str] | None:
    """The scopes a listing covers: the one asked for, if the key may see it; else every scope it may see (None:
    all of them, for an admin)."""
    if caller.admin:
        return [scope] if scope else None
    if scope is not None:
        if not money.tenant_sees(caller.tenant, scope, deps):
            raise Forbidden(f"a member key of {caller.tenant} asked for the alerts of {scope}", errors=[
                {"field": "scope", "message": "a member key sees its own tenant and its own campaigns only"}])
        return [scope]
    # The campaigns with alerts, each asked of the campaign store: an alert doesn't name the tenant whose campaign
    # it is about (a campaign's scope is its id alone, a hash of tenant and name).
    campaigns = sorted(s for s in deps.alert_history.scopes() if s.startswith(CAMPAIGN))
    return [f"tenant:{caller.tenant}", *(s for s in campaigns if money.tenant_sees(caller.tenant, s, deps))]

