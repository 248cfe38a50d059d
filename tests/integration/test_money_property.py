"""The money property test of tests/services/test_money_property.py with its jobs, ledger and budgets on DynamoDB
(a locked moto server, fresh tables from infra/template.yaml for every run): the conditional writes and
transactions that hold and settle money, and the by-period index the ledger's figure is read from, are the real
ones. Fewer runs than on the twins: each costs a few hundred DynamoDB calls."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from hvr.local.moto_server import REGION, LockedMotoServer
from hvr.local.provision import load_template, provision
from router.services.deps import Deps
from router.store.budgets import BudgetRepository
from router.store.jobs import JobsRepository
from router.store.ledger import LedgerRepository
from tests.machines import scaled_and_full
from tests.services.test_money_property import MoneyFigures

_server: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def dynamodb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    template = load_template()
    tables = {name: resource for name, resource in template["Resources"].items()
              if resource["Type"] == "AWS::DynamoDB::Table"}
    path = tmp_path_factory.mktemp("money") / "tables.yaml"
    path.write_text(yaml.safe_dump({"Resources": tables}))
    server = LockedMotoServer().start()
    _server.update(url=server.url, template=path)
    yield
    server.stop()
    _server.clear()


class MoneyFiguresOnDynamoDB(MoneyFigures):
    def on_stores(self, deps: Deps) -> None:
        ddb = boto3.client("dynamodb", endpoint_url=_server["url"], region_name=REGION,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        tables = provision({"dynamodb": ddb}, stack_name=f"m{uuid.uuid4().hex[:10]}",
                           path=Path(_server["template"])).table_names
        deps.jobs = JobsRepository(ddb, tables["JobsTable"], clock=lambda: deps.clock())
        deps.ledger = LedgerRepository(ddb, tables["LedgerTable"])
        deps.budgets = BudgetRepository(ddb, tables["BudgetsTable"])


TestMoneyFiguresOnDynamoDB, TestMoneyFiguresOnDynamoDBFull = scaled_and_full(MoneyFiguresOnDynamoDB, scaled=(6, 15),
                                                                            full=(60, 25))
