"""An AWS error no store method handles itself leaves the store as StoreUnavailable, never as botocore's ClientError.

Each store talks to moto about a table, bucket, queue or topic that doesn't exist. A call is picked per store, and
where a store has one, a generator (whose calls are made as it is iterated) and a call that handles some errors
itself (a conditional write, a transaction) and must pass the others on.
"""

from __future__ import annotations

import importlib
import inspect
import io
import pkgutil
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

import router.store
from hvr.local.moto_server import REGION
from router.models.campaign_queue import CampaignMessage
from router.models.job import JobStatus
from router.policy.learning import Observation
from router.store.agents import AgentsRepository
from router.store.alert_history import AlertHistoryRepository
from router.store.alerts import AlertPublisher
from router.store.artifacts import ArtifactStore
from router.store.auth_failures import AuthFailures
from router.store.budgets import BudgetRepository
from router.store.campaigns import CampaignQueue, CampaignsRepository, ManifestStore, RouteBatches
from router.store.circuits import CircuitRepository
from router.store.errors import StoreUnavailable
from router.store.events import EventPublisher
from router.store.experiments import ExperimentsRepository
from router.store.exports import LedgerExport
from router.store.findings import FindingsRepository
from router.store.jobs import JobsRepository
from router.store.keys import KeysRepository, Principal, new_key
from router.store.learned import LearnedRepository
from router.store.ledger import LedgerRepository
from router.store.messages import JobQueue, MessageKind, WorkerMessage
from router.store.nonces import NonceStore
from router.store.ratings import RatingsRepository
from tests.contract.conftest import moto_client
from tests.contract.test_alert_history import alert
from tests.contract.test_experiments import assigned, experiment
from tests.contract.test_findings import finding
from tests.contract.test_ratings import rating
from tests.contract.test_stores import NOW, PERIOD, entry, new_campaign, new_job

SERVICES = ("dynamodb", "s3", "sqs", "sns")  # what a store's constructor names the client it is given


@dataclass(frozen=True)
class Missing:
    """A client per service on moto, and the name of nothing there for each."""

    clients: dict[str, Any]
    names: dict[str, str]

    def store(self, cls: type) -> Any:
        service = client_of(cls)
        assert service is not None
        return cls(self.clients[service], self.names[service])


@pytest.fixture(scope="module")
def missing(moto_url: str) -> Missing:
    return Missing({service: moto_client(service, moto_url) for service in SERVICES}, {
        "dynamodb": "missing", "s3": "missing", "sqs": f"{moto_url}/123456789012/missing",
        "sns": f"arn:aws:sns:{REGION}:123456789012:missing"})


def client_of(cls: type) -> str | None:
    """The service a class is built on, when its own constructor takes a client first."""
    init = vars(cls).get("__init__")
    first = list(inspect.signature(init).parameters)[1:2] if inspect.isfunction(init) else []
    return first[0] if first and first[0] in SERVICES else None


def aws_backed_stores() -> set[type]:
    found = set()
    for info in pkgutil.iter_modules(router.store.__path__):
        module = importlib.import_module(f"router.store.{info.name}")
        found |= {cls for cls in vars(module).values()
                  if inspect.isclass(cls) and cls.__module__ == module.__name__ and client_of(cls)}
    return found


ROUTE = WorkerMessage(kind=MessageKind.ROUTE, tenant="acme", job_id="job_1")
CALLS: list[tuple[type, str, tuple[Any, ...]]] = [
    (JobsRepository, "create", (new_job("job_1"),)),
    (JobsRepository, "open_jobs", (NOW,)),
    (LedgerRepository, "record", (entry("att_1"),)),
    (BudgetRepository, "reserve", ("acme", "job_1", "att_1", PERIOD, ["global"], Decimal(1), NOW)),
    (CircuitRepository, "failure", ("runpod", NOW, 30.0)),
    (LearnedRepository, "observe", ("local/wan", Observation(ok=False), "att_1")),
    (CampaignsRepository, "create", (new_campaign(),)),
    (CampaignsRepository, "plan_inputs", ("acme", "cmp_x")),
    (KeysRepository, "put", (new_key(), Principal(tenant="acme", role="member"), NOW)),
    (NonceStore, "first_seen", ("webhook", "n1", 1_900_000_000)),
    (ManifestStore, "lines", ("campaigns/acme/spring.jsonl", 0)),
    (CampaignQueue, "send", (CampaignMessage(tenant="acme", campaign_id="cmp_x", step=1),)),
    (RouteBatches, "send", ([ROUTE],)),
    (JobQueue, "send", (ROUTE,)),
    (AlertPublisher, "publish", ("global at 80%", "hvr budget global")),
    (AlertHistoryRepository, "record", (alert(),)),
    (AlertHistoryRepository, "list", (["tenant:acme"], PERIOD)),
    (AlertHistoryRepository, "list", (None, PERIOD)),
    (AlertHistoryRepository, "scopes", ()),
    (EventPublisher, "job_ended", (new_job("job_1", status=JobStatus.SUCCEEDED),)),
    (LedgerExport, "write", (entry("att_1"),)),
    (FindingsRepository, "between", (NOW.date(), NOW.date())),
    (FindingsRepository, "add", (finding("att_1"),)),
    (ArtifactStore, "upload_stream", ("outputs/acme/job_1/att_1.mp4", io.BytesIO(b"not really a video"))),
    (AgentsRepository, "get", ("gpu-1",)),
    (AgentsRepository, "all", ()),
    (AuthFailures, "throttled", ("203.0.113.7", NOW)),
    (AuthFailures, "record", ("203.0.113.7", NOW)),
    (RatingsRepository, "put", (rating("job_1", 4),)),
    (RatingsRepository, "for_job", ("acme", "job_1", NOW.date())),
    (RatingsRepository, "between", (NOW.date(), NOW.date())),
    (RatingsRepository, "tallies", ()),
    (ExperimentsRepository, "define", (experiment(), None)),
    (ExperimentsRepository, "get", ("wan-vs-ad",)),
    (ExperimentsRepository, "all", ()),
    (ExperimentsRepository, "assign", ("wan-vs-ad", [assigned("job_1")], Decimal(1), Decimal(10))),
    (ExperimentsRepository, "assigned", ("wan-vs-ad", "acme", "job_1")),
    (ExperimentsRepository, "jobs", ("wan-vs-ad",)),
]


@pytest.mark.parametrize(("store", "method", "args"), CALLS, ids=[f"{s.__name__}.{m}" for s, m, _ in CALLS])
def test_an_aws_error_the_store_leaves_unhandled_is_store_unavailable(
        missing: Missing, store: type, method: str, args: tuple[Any, ...]) -> None:
    with pytest.raises(StoreUnavailable) as raised:
        answer = getattr(missing.store(store), method)(*args)
        if inspect.isgenerator(answer):
            list(answer)
    assert isinstance(raised.value.__cause__, ClientError)


def test_every_aws_backed_store_is_called_above() -> None:
    assert {store for store, _, _ in CALLS} == aws_backed_stores()
