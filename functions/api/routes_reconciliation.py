"""Reconciliation of the ledger with the providers' records (admin keys only): run it over a few days now, and list
what runs have found (router.services.reconcile; the sweeper runs it daily over yesterday)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from functions.api.http import documented, iso_day, json_response, principal, unstated
from functions.api.routes_costs import From, To
from router.models.reconciliation import FindingList, ReconciliationReport
from router.services.costs import WindowError, report_window
from router.services.deps import default_deps
from router.services.reconcile import reconcile

router = Router()

MAX_RUN_DAYS = 31  # a run asks a provider about every row: a month at most, and within RUN_BUDGET_S
MAX_LIST_DAYS = 92  # one query per day
RUN_BUDGET_S = 10.0  # the API function has 15 s (infra/template.yaml); rows left are counted `not_checked`
Day = Annotated[date, BeforeValidator(iso_day)]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: Day = Field(alias="from", description="first day, UTC")
    end: Day = Field(alias="to", description="last day, inclusive")


RUN_RULES = {"to": f"must not be before from, and the window may span at most {MAX_RUN_DAYS} days"}
LIST_RULES = {"to": "must not be before from, and the window (unset: this month, up to today) may span at most "
                    f"{MAX_LIST_DAYS} days"}


def _span(first: date, last: date, most: int) -> None:
    if first > last:
        raise WindowError("to", f"{last} is before from {first}")
    if (last - first).days >= most:
        raise WindowError("to", f"the window may span at most {most} days")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _after(day: date) -> datetime:
    """The end of a day, exclusive: the next midnight (the last representable instant after the last day)."""
    return _midnight(day + timedelta(days=1)) if day < date.max else datetime.max.replace(tzinfo=UTC)


@router.post("/v1/reconciliation/runs", summary="Reconcile the ledger with the providers' records over a window "
                                                "now (admin)", **unstated(RUN_RULES),
             responses=documented({200: "the run's report: its counts and what it found"}, body=True))
def run_reconciliation(body: Annotated[RunRequest, Body(embed=False)]) -> Response[ReconciliationReport]:
    principal(router, admin=True)
    _span(body.start, body.end, MAX_RUN_DAYS)
    return json_response(reconcile(default_deps(), _midnight(body.start), _after(body.end), budget_s=RUN_BUDGET_S))


@router.get("/v1/reconciliation", summary="Stored reconciliation findings of attempts that ended in a window "
                                          "(admin)", **unstated(LIST_RULES),
            responses=documented({200: "the findings, by the day their attempt ended"}, {400: None}))
def list_findings(start: From = None, end: To = None) -> Response[FindingList]:
    principal(router, admin=True)
    deps = default_deps()
    first, last = report_window(start, end, deps.clock().date())
    _span(first, last, MAX_LIST_DAYS)
    return json_response(FindingList(start=first, end=last, findings=deps.findings.between(first, last)))
