"""The collaborators a use case needs, built once per process from settings (or handed in by tests)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from router.models.common import ProviderKind, new_id, utcnow
from router.policy.catalog import Catalog, cached_catalog
from router.providers.base import VideoProvider
from router.settings import Settings, get_settings
from router.store.agent_keys import AgentKeysRepository
from router.store.agents import AgentsRepository
from router.store.alert_history import AlertHistoryRepository
from router.store.alerts import AlertPublisher
from router.store.artifacts import ArtifactStore
from router.store.aws import client
from router.store.budgets import BudgetRepository
from router.store.campaigns import CampaignsRepository
from router.store.circuits import CircuitRepository
from router.store.events import EventPublisher
from router.store.experiments import ExperimentsRepository
from router.store.exports import LedgerExport
from router.store.findings import FindingsRepository
from router.store.jobs import JobsRepository
from router.store.keys import KeysRepository
from router.store.learned import LearnedRepository
from router.store.ledger import LedgerRepository
from router.store.messages import JobQueue
from router.store.nonces import NonceStore
from router.store.protocols import (
    AgentKeyStore,
    AgentRegistry,
    AlertHistory,
    Alerts,
    Artifacts,
    BudgetStore,
    CampaignStore,
    CircuitStore,
    Events,
    ExperimentStore,
    Findings,
    JobStore,
    KeyStore,
    LearnedStore,
    LedgerExports,
    LedgerStore,
    Nonces,
    Queue,
    RatingStore,
)
from router.store.ratings import RatingsRepository


def _default_probe(path: Path) -> Any:
    from router.media.probe import probe  # PyAV is heavy: only finalize pays for it

    return probe(path)


@dataclass
class Deps:
    """Every collaborator is required: a deployment has them all (the template wires every table and topic), and a
    test hands in the in-memory twins (hvr.memory) rather than leaving one out."""

    jobs: JobStore
    ledger: LedgerStore
    artifacts: Artifacts
    queue: Queue
    catalog: Catalog
    providers: Mapping[ProviderKind, VideoProvider]
    learned: LearnedStore
    circuits: CircuitStore
    keys: KeyStore
    budgets: BudgetStore
    campaigns: CampaignStore  # admission checks a request's campaign_id against it
    exports: LedgerExports
    findings: Findings  # reconciliation's findings (services.reconcile)
    alerts: Alerts
    alert_history: AlertHistory  # what alerts said, for GET /v1/alerts
    nonces: Nonces
    events: Events
    agents: AgentRegistry  # the fleet registry (router.store.agents)
    agent_keys: AgentKeyStore  # each agent's HMAC keys, Secrets Manager in a deployment
    ratings: RatingStore  # ratings of delivered jobs and each offer's tally (services.ratings)
    experiments: ExperimentStore  # A/B experiments and the jobs they assigned (services.experiments)
    settings: Settings
    probe: Callable[[Path], Any] = _default_probe
    clock: Callable[[], datetime] = utcnow
    # A job's id, from the clock and os.urandom. Replaceable like the clock: a property test that replays its steps
    # needs the same ids, since they decide the order the sweeper reads open jobs in (the open index is sharded by id).
    new_id: Callable[[str], str] = new_id
    time_scale: float = 1.0
    max_attempts: int = 3
    max_submit_tries: int = 8


def build_deps(settings: Settings) -> Deps:
    from router.providers.registry import build_providers

    ddb = client("dynamodb", settings.aws_endpoint_url)
    s3 = client("s3", settings.aws_endpoint_url)
    sns = client("sns", settings.aws_endpoint_url)

    def now() -> datetime:  # late-bound: the jobs' stamps follow the clock a test sets on the Deps
        return deps.clock()

    deps = Deps(
        jobs=JobsRepository(ddb, settings.jobs_table, clock=now),
        ledger=LedgerRepository(ddb, settings.ledger_table),
        artifacts=ArtifactStore(s3, settings.bucket),
        queue=JobQueue(client("sqs", settings.aws_endpoint_url), settings.jobs_queue_url),
        catalog=cached_catalog(settings.catalog_path, settings.local_cost_basis),
        providers=build_providers(settings),
        learned=LearnedRepository(ddb, settings.ledger_table),
        circuits=CircuitRepository(ddb, settings.ledger_table),
        keys=KeysRepository(ddb, settings.keys_table),
        budgets=BudgetRepository(ddb, settings.budgets_table),
        campaigns=CampaignsRepository(ddb, settings.ledger_table),
        exports=LedgerExport(s3, settings.bucket),
        findings=FindingsRepository(ddb, settings.ledger_table),
        alerts=AlertPublisher(sns, settings.alerts_topic_arn),
        alert_history=AlertHistoryRepository(ddb, settings.budgets_table),
        nonces=NonceStore(ddb, settings.idempotency_table),
        events=EventPublisher(sns, settings.events_topic_arn),
        agents=AgentsRepository(ddb, settings.agents_table),
        agent_keys=AgentKeysRepository(client("secretsmanager", settings.aws_endpoint_url),
                                       settings.agent_keys_prefix),
        ratings=RatingsRepository(ddb, settings.ledger_table),
        experiments=ExperimentsRepository(ddb, settings.ledger_table),
        settings=settings,
        time_scale=settings.time_scale,
        max_attempts=settings.max_attempts,
        max_submit_tries=settings.max_submit_tries,
    )
    if settings.fleet_from_registry:
        from router.providers.fleet import FleetProvider
        from router.services.fleet_registry import RegistryBoxes

        deps.providers = {**deps.providers, ProviderKind.LOCAL: FleetProvider(
            RegistryBoxes(deps.agents, deps.agent_keys, now))}
    return deps


@cache
def default_deps() -> Deps:
    return build_deps(get_settings())
