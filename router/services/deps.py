"""The collaborators a use case needs, built once per process from settings (or handed in by tests)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from router.models.common import ProviderKind, utcnow
from router.policy.catalog import Catalog, cached_catalog
from router.providers.base import VideoProvider
from router.settings import Settings, get_settings
from router.store.alerts import AlertPublisher
from router.store.artifacts import ArtifactStore
from router.store.aws import client
from router.store.budgets import BudgetRepository
from router.store.campaigns import CampaignsRepository
from router.store.circuits import CircuitRepository
from router.store.events import EventPublisher
from router.store.exports import LedgerExport
from router.store.jobs import JobsRepository
from router.store.keys import KeysRepository
from router.store.learned import LearnedRepository
from router.store.ledger import LedgerRepository
from router.store.messages import JobQueue
from router.store.nonces import NonceStore


def _default_probe(path: Path) -> Any:
    from router.media.probe import probe  # PyAV is heavy: only finalize pays for it

    return probe(path)


@dataclass
class Deps:
    jobs: JobsRepository
    ledger: LedgerRepository
    artifacts: ArtifactStore
    queue: JobQueue
    catalog: Catalog
    providers: Mapping[ProviderKind, VideoProvider]
    learned: LearnedRepository | None = None
    circuits: CircuitRepository | None = None
    keys: KeysRepository | None = None
    budgets: BudgetRepository | None = None
    campaigns: CampaignsRepository | None = None  # admission checks a request's campaign_id against it
    exports: LedgerExport | None = None
    alerts: AlertPublisher | None = None
    nonces: NonceStore | None = None
    events: EventPublisher | None = None
    settings: Settings | None = None
    probe: Callable[[Path], Any] = _default_probe
    clock: Callable[[], datetime] = utcnow
    time_scale: float = 1.0
    max_attempts: int = 3
    max_submit_tries: int = 8


def build_deps(settings: Settings) -> Deps:
    from router.providers.registry import build_providers

    ddb = client("dynamodb", settings.aws_endpoint_url)
    return Deps(
        jobs=JobsRepository(ddb, settings.jobs_table),
        ledger=LedgerRepository(ddb, settings.ledger_table),
        artifacts=ArtifactStore(client("s3", settings.aws_endpoint_url), settings.bucket),
        queue=JobQueue(client("sqs", settings.aws_endpoint_url), settings.jobs_queue_url),
        catalog=cached_catalog(settings.catalog_path, settings.local_cost_basis),
        providers=build_providers(settings),
        learned=LearnedRepository(ddb, settings.ledger_table),
        circuits=CircuitRepository(ddb, settings.ledger_table),
        keys=KeysRepository(ddb, settings.keys_table) if settings.keys_table else None,
        budgets=BudgetRepository(ddb, settings.budgets_table) if settings.budgets_table else None,
        campaigns=CampaignsRepository(ddb, settings.ledger_table),
        exports=LedgerExport(client("s3", settings.aws_endpoint_url), settings.bucket),
        alerts=AlertPublisher(client("sns", settings.aws_endpoint_url), settings.alerts_topic_arn)
        if settings.alerts_topic_arn else None,
        nonces=NonceStore(ddb, settings.idempotency_table) if settings.idempotency_table else None,
        events=EventPublisher(client("sns", settings.aws_endpoint_url), settings.events_topic_arn)
        if settings.events_topic_arn else None,
        settings=settings,
        time_scale=settings.time_scale,
        max_attempts=settings.max_attempts,
        max_submit_tries=settings.max_submit_tries,
    )


@cache
def default_deps() -> Deps:
    return build_deps(get_settings())
