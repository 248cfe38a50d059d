"""Settings per process, read from the environment on first use (never at import)."""

from __future__ import annotations

import os
from decimal import Decimal
from functools import cache

from pydantic import BaseModel, Field

from router.models.offer import LocalCostBasis

REGISTRY_FLEET = "registry"  # HVR_AGENTS=registry: the fleet is whatever boxes registered

class Settings(BaseModel):
    jobs_table: str = Field(alias="HVR_JOBS_TABLE")
    ledger_table: str = Field(alias="HVR_LEDGER_TABLE")
    bucket: str = Field(alias="HVR_BUCKET")
    jobs_queue_url: str = Field(alias="HVR_JOBS_QUEUE_URL")
    catalog_path: str | None = Field(default=None, alias="HVR_CATALOG")
    agent_url: str | None = Field(default=None, alias="HVR_AGENT_URL")
    # In AWS this comes from Secrets Manager via the deployment; locally from the environment.
    agent_secret: str | None = Field(default=None, alias="HVR_AGENT_SECRET")
    agent_name: str = Field(default="agent-1", alias="HVR_AGENT_NAME")
    # A fleet of GPU boxes, `name=url,name=url` (one agent secret for all): replaces HVR_AGENT_URL/NAME when set.
    agents: str | None = Field(default=None, alias="HVR_AGENTS")
    # The fleet registry (router.store.agents): its table, how often agents announce themselves (a box that misses
    # 3 heartbeats is down), where their per-agent keys live in Secrets Manager, and how long a rotated-out key
    # still signs (the time to give the agent its new key).
    agents_table: str = Field(alias="HVR_AGENTS_TABLE")
    agent_heartbeat_s: float = Field(default=30.0, gt=0, le=3600, alias="HVR_AGENT_HEARTBEAT_S")
    agent_keys_prefix: str = Field(default="hvr/agents/", pattern=r"^[A-Za-z0-9/_+=.@-]{1,256}$",
                                   alias="HVR_AGENT_KEYS_PREFIX")
    agent_key_overlap_s: float = Field(default=3600.0, ge=0, le=7 * 86400, alias="HVR_AGENT_KEY_OVERLAP_S")
    # >1 shrinks poll delays in the embedded stack; production leaves it at 1.
    time_scale: float = Field(default=1.0, gt=0, alias="HVR_TIME_SCALE")
    max_attempts: int = Field(default=3, ge=1, alias="HVR_MAX_ATTEMPTS")
    # Submits of one attempt that failed before the provider confirmed it; then the attempt ends and fallback runs.
    max_submit_tries: int = Field(default=8, ge=1, alias="HVR_MAX_SUBMIT_TRIES")
    # How a local GPU-second is charged, in decisions and on the ledger: energy only (marginal) or energy plus
    # amortized depreciation (full). Depreciation is reported as a fixed cost either way (docs/decisions.md).
    local_cost_basis: LocalCostBasis = Field(default=LocalCostBasis.MARGINAL, alias="HVR_LOCAL_COST_BASIS")
    # Bounded exploration (router.policy.exploration, docs/decisions.md 2026-12-04): the share of jobs drawn to try an
    # offer with little evidence (0 turns it off), and what exploring attempts may take per UTC day.
    # Every eligible decision by default: the eligibility rules and the daily caps are what bound it (2026-12-04).
    exploration_share: float = Field(default=1.0, ge=0, le=1, alias="HVR_EXPLORATION_SHARE")
    exploration_jobs_per_day: int = Field(default=20, ge=0, alias="HVR_EXPLORATION_JOBS_PER_DAY")
    exploration_usd_per_day: Decimal = Field(default=Decimal("5.00"), ge=0, alias="HVR_EXPLORATION_USD_PER_DAY")
    # Kept between a fallback's p90 ready time and the deadline: the abandon poll, the cancel and the resubmit.
    exploration_margin_s: float = Field(default=600.0, ge=0, alias="HVR_EXPLORATION_MARGIN_S")
    # Ratings an offer needs before its learned quality replaces its catalog stars in routing (router.policy.quality).
    quality_min_ratings: int = Field(default=30, ge=1, alias="HVR_QUALITY_MIN_RATINGS")
    aws_endpoint_url: str | None = Field(default=None, alias="AWS_ENDPOINT_URL")
    keys_table: str = Field(alias="HVR_KEYS_TABLE")
    budgets_table: str = Field(alias="HVR_BUDGETS_TABLE")
    alerts_topic_arn: str = Field(alias="HVR_ALERTS_TOPIC_ARN")
    # Thresholds that move a budget's spend mode: `0.8=economy,1.0=local_only` (docs/architecture.md, "Money").
    spend_rules: str | None = Field(default=None, alias="HVR_SPEND_RULES")
    idempotency_table: str = Field(alias="HVR_IDEMPOTENCY_TABLE")
    events_topic_arn: str = Field(alias="HVR_EVENTS_TOPIC_ARN")
    public_api_url: str | None = Field(default=None, alias="HVR_PUBLIC_API_URL")
    agent_secret_arn: str | None = Field(default=None, alias="HVR_AGENT_SECRET_ARN")
    # Standard Webhooks secret (`whsec_…`) that signs client callbacks; in AWS read from Secrets Manager.
    callback_secret: str | None = Field(default=None, alias="HVR_CALLBACK_SECRET")
    callback_secret_arn: str | None = Field(default=None, alias="HVR_CALLBACK_SECRET_ARN")
    # Cloud providers: an adapter exists where its credentials do; base URLs point at sandboxes locally.
    runpod_api_key: str | None = Field(default=None, alias="HVR_RUNPOD_API_KEY")
    runpod_base_url: str = Field(default="https://api.runpod.ai/v2", alias="HVR_RUNPOD_BASE_URL")
    # The studio's own worker-comfyui endpoint id: runpod offers whose model is a router.workflows model run there.
    runpod_comfy_endpoint: str | None = Field(default=None, alias="HVR_RUNPOD_COMFY_ENDPOINT")
    replicate_api_token: str | None = Field(default=None, alias="HVR_REPLICATE_API_TOKEN")
    replicate_base_url: str = Field(default="https://api.replicate.com", alias="HVR_REPLICATE_BASE_URL")
    veo_project: str | None = Field(default=None, alias="HVR_VEO_PROJECT")
    veo_location: str = Field(default="us-central1", alias="HVR_VEO_LOCATION")
    veo_api_key: str | None = Field(default=None, alias="HVR_VEO_API_KEY")  # Vertex express mode
    veo_base_url: str | None = Field(default=None, alias="HVR_VEO_BASE_URL")
    # Secret that derives RunPod's per-attempt webhook tokens (RunPod doesn't sign its webhooks).
    webhook_token_secret: str | None = Field(default=None, alias="HVR_WEBHOOK_TOKEN_SECRET")
    # Embedded stack only: provider output downloads may come from loopback (the sandboxes). Off by default.
    allow_loopback_downloads: bool = Field(default=False, alias="HVR_ALLOW_LOOPBACK_DOWNLOADS")
    # Embedded stack only: `host=127.0.0.1:port,…` delivers https://host/… callbacks over http to loopback.
    dev_callback_hosts: str | None = Field(default=None, alias="HVR_DEV_CALLBACK_HOSTS")

    @property
    def fleet_from_registry(self) -> bool:
        """HVR_AGENTS=registry: the boxes are those that registered, each reached at its announced tunnel URL."""
        return self.agents == REGISTRY_FLEET

    def fleet(self) -> dict[str, str]:
        """The GPU boxes by name → agent URL: HVR_AGENTS, else the one HVR_AGENT_URL as HVR_AGENT_NAME; none from
        here when the registry names them (`fleet_from_registry`)."""
        if self.fleet_from_registry:
            return {}
        if self.agents:
            boxes = {}
            for entry in self.agents.split(","):
                name, _, url = entry.strip().partition("=")
                if not name or not url:
                    raise ValueError(f"HVR_AGENTS: {entry.strip()!r} is not name=url")
                boxes[name.strip()] = url.strip()
            return boxes
        return {self.agent_name: self.agent_url} if self.agent_url else {}

    def secret(self, value: str | None, arn: str | None) -> str | None:
        """A secret given directly (local runs) or by Secrets Manager ARN (AWS; cached by Powertools)."""
        if value:
            return value
        if arn:
            from aws_lambda_powertools.utilities.parameters import get_secret

            return str(get_secret(arn, max_age=300))
        return None


@cache
def get_settings() -> Settings:
    return Settings.model_validate(dict(os.environ))
