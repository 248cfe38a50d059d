"""Every contract test runs twice: on the boto3 store against moto (tables from infra/template.yaml, provisioned by
the embedded stack's own code) and on its in-memory twin."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from hvr.local.moto_server import REGION
from hvr.local.provision import load_template, provision
from hvr.memory import (
    MemoryBudgets,
    MemoryCampaigns,
    MemoryCircuits,
    MemoryJobs,
    MemoryKeys,
    MemoryLearned,
    MemoryLedger,
    MemoryNonces,
)
from router.models.common import utcnow
from router.store.budgets import BudgetRepository
from router.store.campaigns import CampaignsRepository
from router.store.circuits import CircuitRepository
from router.store.jobs import JobsRepository
from router.store.keys import KeysRepository
from router.store.learned import LearnedRepository
from router.store.ledger import LedgerRepository
from router.store.nonces import NonceStore
from router.store.protocols import (
    BudgetStore,
    CampaignStore,
    CircuitStore,
    JobStore,
    KeyStore,
    LearnedStore,
    LedgerStore,
    Nonces,
)


class Clock:
    """The jobs store's clock: the wall's, until a test sets `at`."""

    def __init__(self) -> None:
        self.at: datetime | None = None

    def __call__(self) -> datetime:
        return self.at or utcnow()


@dataclass(frozen=True)
class Stores:
    """One backend's stores, typed as their protocols: mypy checks both implementations against them here."""

    backend: str
    clock: Clock
    jobs: JobStore
    ledger: LedgerStore
    budgets: BudgetStore
    circuits: CircuitStore
    learned: LearnedStore
    campaigns: CampaignStore
    keys: KeyStore
    nonces: Nonces


@pytest.fixture(scope="session")
def tables_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template's tables alone: each test gets fresh tables in a few milliseconds, without the queues, topics
    and bucket it would never use."""
    template = load_template()
    tables = {name: resource for name, resource in template["Resources"].items()
              if resource["Type"] == "AWS::DynamoDB::Table"}
    path = tmp_path_factory.mktemp("contract") / "tables.yaml"
    path.write_text(yaml.safe_dump({"Resources": tables}))
    return path


def moto_client(service: str, url: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@pytest.fixture(params=["dynamodb", "memory"])
def stores(request: pytest.FixtureRequest, tables_template: Path) -> Stores:
    clock = Clock()
    if request.param == "memory":
        return Stores("memory", clock, MemoryJobs(clock), MemoryLedger(), MemoryBudgets(), MemoryCircuits(),
                      MemoryLearned(), MemoryCampaigns(), MemoryKeys(), MemoryNonces())
    ddb = moto_client("dynamodb", request.getfixturevalue("moto_url"))
    # moto keeps one state per process: a stack name of its own gives each test empty tables.
    tables = provision({"dynamodb": ddb}, stack_name=f"c{uuid.uuid4().hex[:10]}", path=tables_template).table_names
    ledger = tables["LedgerTable"]
    return Stores("dynamodb", clock, JobsRepository(ddb, tables["JobsTable"], clock), LedgerRepository(ddb, ledger),
                  BudgetRepository(ddb, tables["BudgetsTable"]), CircuitRepository(ddb, ledger),
                  LearnedRepository(ddb, ledger), CampaignsRepository(ddb, ledger),
                  KeysRepository(ddb, tables["KeysTable"]), NonceStore(ddb, tables["IdempotencyTable"]))
