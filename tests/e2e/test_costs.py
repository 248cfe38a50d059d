"""Cost reports over HTTP against the embedded stack: the figures are the ledger's, scoped by key; `hvr costs` and
`hvr budgets` talk to the same API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from hvr.cli import budget_limit, daily_spend, main
from hvr.client import ApiClient
from hvr.local.embedded import EmbeddedStack
from router.models.ledger import LedgerEntry
from router.services.costs import day_of, periods
from tests.e2e.conftest import client
from tests.e2e.test_api import DRAFT, wait_for

WAN_480 = {**DRAFT, "resolution": "480p", "aspect_ratio": "16:9", "duration_s": 5,
           "model": "replicate/wan-2.2-t2v-fast"}


@pytest.fixture(scope="module")
def finished(stack: EmbeddedStack) -> Iterator[list[dict]]:
    """Three acme jobs on two providers and one beta job, all ended."""
    acme, beta = client(stack, "acme-key"), client(stack, "beta-key")
    submitted = [(acme, acme.post("/v1/jobs", json=body)) for body in (DRAFT, DRAFT, WAN_480)]
    submitted.append((beta, beta.post("/v1/jobs", json=DRAFT)))
    for _, response in submitted:
        assert response.status_code == 202, response.text
    jobs = [wait_for(api, response.json()["id"]) for api, response in submitted]
    assert [job["status"] for job in jobs] == ["succeeded"] * 4, [job["error"] for job in jobs]
    yield jobs
    acme.close()
    beta.close()


def ledger_rows(stack: EmbeddedStack, report: dict, tenant: str | None = None) -> list[LedgerEntry]:
    first, last = report["from"], report["to"]
    rows = [row for period in periods(date.fromisoformat(first), date.fromisoformat(last))
            for row in stack.deps.ledger.for_period(period)]
    return [r for r in rows if first <= day_of(r) <= last and (tenant is None or r.tenant == tenant)]


def expected(rows: list[LedgerEntry], key: str) -> dict[str, tuple[int, str, str]]:
    sums: dict[str, list] = {}
    for r in rows:
        name = getattr(r, key).value if key == "provider" else getattr(r, key)
        entry = sums.setdefault(name, [0, Decimal(0), Decimal(0)])
        entry[0] += r.outcome == "succeeded"
        entry[1] += r.actual_usd
        entry[2] += r.estimated_usd
    return {name: (n, f"{actual:.4f}", f"{est:.4f}") for name, (n, actual, est) in sums.items()}


def groups(report: dict) -> dict[str, tuple[int, str, str]]:
    return {g["key"]: (g["videos"], g["actual_usd"], g["estimated_usd"]) for g in report["groups"]}


def test_costs_by_provider_and_offer_match_the_ledger(stack: EmbeddedStack, finished: list[dict],
                                                      acme: httpx.Client) -> None:
    for group_by, field in (("provider", "provider"), ("offer", "offer")):
        response = acme.get("/v1/costs", params={"group_by": group_by})
        assert response.status_code == 200, response.text
        report = response.json()
        rows = ledger_rows(stack, report)
        assert groups(report) == expected(rows, field)
        assert report["total_usd"] == f"{sum(r.actual_usd for r in rows):.4f}"
        assert report["tenant"] is None and report["group_by"] == group_by
    by_offer = groups(report)
    assert by_offer["local/animatediff-sd15"][0] == 3 and by_offer["replicate/wan-2.2-t2v-fast"][0] == 1
    # The job's own cost is the sum of its attempts' ledger rows.
    job_costs = sum(Decimal(job["cost"]["actual_usd"]) for job in finished)
    assert report["total_usd"] == f"{job_costs:.4f}"


def test_members_see_their_tenant_and_admins_choose(stack: EmbeddedStack, finished: list[dict],
                                                    acme: httpx.Client, beta: httpx.Client) -> None:
    own = beta.get("/v1/costs", params={"group_by": "offer"}).json()
    assert own["tenant"] == "beta"
    assert groups(own) == expected(ledger_rows(stack, own, "beta"), "offer")
    assert list(groups(own)) == ["local/animatediff-sd15"]
    assert acme.get("/v1/costs", params={"group_by": "offer", "tenant": "beta"}).json()["groups"] == own["groups"]
    by_tenant = acme.get("/v1/costs", params={"group_by": "tenant"}).json()
    assert {key: videos for key, (videos, _, _) in groups(by_tenant).items()} == {"acme": 3, "beta": 1}

    for params in ({"group_by": "tenant"}, {"group_by": "offer", "tenant": "acme"}):
        refused = beta.get("/v1/costs", params=params)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert beta.get("/v1/costs/tco", params={"tenant": "acme"}).status_code == 403

    tco = beta.get("/v1/costs/tco").json()
    assert tco["tenant"] == "beta" and tco["videos"] == 1
    routed = tco["options"][0]
    assert routed["option"] == "hvr as routed" and routed["total_usd"] == own["total_usd"]
    everyone = acme.get("/v1/costs/tco").json()
    assert everyone["videos"] == 4 and [o["option"] for o in everyone["options"]] == [
        "hvr as routed", "all on veo/veo-3.1-fast", "all local", "static rule"]


BAD_PARAMS = [
    ({}, "group_by"),
    ({"group_by": "colour"}, "group_by"),
    ({"group_by": "day", "from": "2026-13-01"}, "from"),
    ({"group_by": "day", "to": "yesterday"}, "to"),
    ({"group_by": "day", "from": "2026-05-02", "to": "2026-05-01"}, "to"),
    ({"group_by": "day", "from": "2020-01-01", "to": "2026-01-01"}, "to"),
    ({"group_by": "day", "provider": "aws"}, "provider"),
    ({"group_by": "day", "tenant": "Not A Tenant"}, "tenant"),
]


@pytest.mark.parametrize(("params", "field"), BAD_PARAMS)
def test_bad_parameters_are_a_problem_naming_the_field(acme: httpx.Client, params: dict, field: str) -> None:
    response = acme.get("/v1/costs", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_cli_budgets_set_list_and_cost_chart(stack: EmbeddedStack, finished: list[dict], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    api = ["--api-url", stack.url, "--api-key", "acme-key"]
    assert main(["budgets", "set", "global", "--limit", "100.00", "--thresholds", "0.5,0.9", *api]) == 0
    assert main(["budgets", *api]) == 0
    listed = [line.split() for line in capsys.readouterr().out.splitlines()]
    global_row = next(cells for cells in listed if cells[0] == "global")
    assert global_row[2] == "$100.0000" and global_row[6] == "normal" and global_row[7] == "0.5,0.9"
    # The API options may come before the subcommand too; a member key is refused.
    assert main(["budgets", *api, "set", "global", "--limit", "100.00", "--mode", "economy"]) == 0
    assert "economy" in capsys.readouterr().out
    assert main(["budgets", "set", "global", "--limit", "1", "--api-url", stack.url, "--api-key", "beta-key"]) == 2
    assert "error 403" in capsys.readouterr().err

    with ApiClient(stack.url, "acme-key") as admin, ApiClient(stack.url, "beta-key") as member:
        assert budget_limit(admin, "global") == Decimal("100.0000")
        assert budget_limit(member, "global") is None  # a member sees its own tenant's budgets only: no line, no error
        days, series = daily_spend(admin, {})
        rows = ledger_rows(stack, {"from": days[0].isoformat(), "to": days[-1].isoformat()})
    assert {p: sum(s.values()) for p, s in series.items()} == {
        p: Decimal(actual) for p, (_, actual, _) in expected(rows, "provider").items()}

    chart = tmp_path / "spend.png"
    assert main(["costs", "--chart", str(chart), "--group-by", "provider", *api]) == 0
    out = capsys.readouterr().out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 5000
    assert out.splitlines()[0].endswith("all tenants, by provider") and "total: $" in out
    assert main(["costs", "--tco", "--api-url", stack.url, "--api-key", "beta-key"]) == 0
    tco = capsys.readouterr().out
    assert "tenant beta: 1 videos delivered" in tco and "static rule" in tco and "monthly at 1,000" in tco


def test_a_budget_set_after_spending_agrees_with_the_costs_and_the_chart(stack: EmbeddedStack, finished: list[dict],
                                                                          acme: httpx.Client) -> None:
    """One figure of what a scope spent this month, wherever it is shown: the budget (set after the renders), the
    cost report and the chart's month-to-date series."""
    today = stack.deps.clock().date()
    month = {"from": today.replace(day=1).isoformat(), "to": today.isoformat()}
    put = acme.put("/v1/budgets/tenant:beta", json={"limit_usd": "1.00"})
    assert put.status_code == 200, put.text
    budget = next(b for b in acme.get("/v1/budgets").json()["budgets"] if b["scope"] == "tenant:beta")
    answer = acme.get("/v1/costs", params={**month, "tenant": "beta", "group_by": "provider"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    with ApiClient(stack.url, "acme-key") as admin:
        _, series = daily_spend(admin, {**month, "tenant": "beta"})
    charted = sum((sum(days.values(), Decimal(0)) for days in series.values()), Decimal(0))
    assert Decimal(budget["spent_usd"]) == Decimal(report["total_usd"]) == charted > 0
    assert Decimal(budget["remaining_usd"]) == Decimal("1.00") - Decimal(budget["spent_usd"])
