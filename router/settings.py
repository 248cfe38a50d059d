"""Settings per process, read from the environment on first use (never at import)."""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, Field


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
    # >1 shrinks poll delays in the embedded stack; production leaves it at 1.
    time_scale: float = Field(default=1.0, gt=0, alias="HVR_TIME_SCALE")
    max_attempts: int = Field(default=3, ge=1, alias="HVR_MAX_ATTEMPTS")
    aws_endpoint_url: str | None = Field(default=None, alias="AWS_ENDPOINT_URL")


@cache
def get_settings() -> Settings:
    return Settings.model_validate(dict(os.environ))
