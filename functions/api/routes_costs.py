"""Cost reports: spend grouped by provider, offer, tenant, campaign or day, and the studio's TCO table.

Members see their own tenant only; admins see every tenant, or one with `tenant=`, and may group by tenant.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BeforeValidator

from functions.api.http import documented, iso_day, json_response, principal, unstated
from router.errors import Forbidden
from router.models.common import Mode, ProviderKind
from router.services.costs import (
    MAX_WINDOW_DAYS,
    CostReport,
    GroupBy,
    TcoReport,
    cost_report,
    report_window,
    tco_report,
)
from router.services.deps import Deps, default_deps
from router.store.errors import NotFound
from router.store.keys import Principal

router = Router()

TENANT_PATTERN = r"^[a-z0-9][a-z0-9_\-]*$"


From = Annotated[date | None, BeforeValidator(iso_day),
                 Query(alias="from", description="first day, UTC (default: the 1st of this month)")]
To = Annotated[date | None, BeforeValidator(iso_day),
               Query(alias="to", description="last day, inclusive (default: today)")]
Tenant = Annotated[str | None, Query(min_length=1, max_length=64, pattern=TENANT_PATTERN,
                                     description="one tenant (admin keys; a member's own tenant is implied)")]
WINDOW_RULES = {"to": "must not be before from, and the window (unset: this month, up to today) may span at most "
                      f"{MAX_WINDOW_DAYS} days"}
REPORT_RESPONSES = documented({200: "the report"}, {400: None, 403: "a member key asked about another tenant, or "
                                                                  "for group_by=tenant (admin keys only)"})


def _scope(tenant: str | None, group_by: GroupBy | None = None) -> str | None:
    return report_scope(principal(router), tenant, group_by)


def report_scope(caller: Principal, tenant: str | None, group_by: GroupBy | None = None) -> str | None:
    """The tenant a report covers: a member's own, always; an admin's choice, or None for every tenant (the
    scorecard's rule too)."""
    if caller.admin:
        return tenant
    if group_by is GroupBy.TENANT:
        raise Forbidden("group_by=tenant needs an admin key")
    if tenant is not None and tenant != caller.tenant:
        raise Forbidden("a member key reports on its own tenant only")
    return caller.tenant


def _window(deps: Deps, start: date | None, end: date | None) -> tuple[date, date]:
    return report_window(start, end, deps.clock().date())  # a WindowError is the 400 naming `to`


@router.get("/v1/costs", summary="Spend and delivered videos in a window, grouped", **unstated(WINDOW_RULES),
            responses=REPORT_RESPONSES)
def get_costs(group_by: Annotated[GroupBy, Query()], start: From = None, end: To = None, tenant: Tenant = None,
              provider: Annotated[ProviderKind | None, Query(description="one provider only")] = None,
              ) -> Response[CostReport]:
    scope = _scope(tenant, group_by)
    deps = default_deps()
    first, last = _window(deps, start, end)
    return json_response(cost_report(deps.ledger, first, last, group_by, scope, provider))


@router.get("/v1/costs/tco", summary="The studio's TCO table from the ledger: as routed vs all Veo, all local, "
                                     "static rule", **unstated(WINDOW_RULES), responses=REPORT_RESPONSES)
def get_tco(start: From = None, end: To = None, tenant: Tenant = None) -> Response[TcoReport]:
    scope = _scope(tenant)
    deps = default_deps()
    first, last = _window(deps, start, end)

    def job_mode(owner: str, job_id: str) -> Mode | None:
        try:
            return deps.jobs.get(owner, job_id).request.mode
        except NotFound:
            return None

    return json_response(tco_report(deps.ledger, first, last, scope, deps.catalog, job_mode))
