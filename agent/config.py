"""Agent settings: CLI flags, each defaulting to an `HVR_AGENT_*` variable; secrets only from the environment.

Secrets stay out of argv because a process's arguments are readable by every user on the box.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from router.models.agent import AGENT_NAME_PATTERN
from router.workflows.models import DEFAULT_MODELS_FILE

SECRETS_ENV = "HVR_AGENT_SECRETS"
# Printed once the socket listens; the launcher reads the bound address from it.
READY_PREFIX = "hvr agent ready: "
# Set by agent.launcher to its own pid: the agent stops when that process is gone, however it died.
PARENT_ENV = "HVR_AGENT_EXIT_WITH_PARENT"
LOOPBACK_INPUTS_ENV = "HVR_AGENT_ALLOW_LOOPBACK_INPUTS"
MODELS_FILE_ENV = "HVR_AGENT_MODELS_FILE"
# ComfyUI's folder (the one holding models/): where the health check and `hvr-agent models check` look for files.
COMFYUI_ROOT_ENV = "HVR_AGENT_COMFYUI_ROOT"
# The fleet registry (agent.registration): the agent's own key, issued by `hvr agents create NAME`. The secret only
# from the environment, as the signing secrets.
KEY_SECRET_ENV = "HVR_AGENT_KEY_SECRET"


class ConfigError(Exception):
    """The agent can't start with the given settings; the message says what to fix."""


class AgentSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Loopback by default: the agent is reached through a tunnel, never on a public port
    # (docs/architecture.md, "Security between router and agent").
    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)
    db_path: Path = Path("hvr-agent.db")
    engine: Literal["sim", "comfyui"] = "sim"
    # Where the comfyui engine finds ComfyUI: on the same box, loopback (it has no auth of its own).
    comfyui_url: str = Field(default="http://127.0.0.1:8188", pattern=r"^https?://")
    # How long the comfyui engine trusts what it last found runnable (model files present, fitting the card).
    comfyui_cache_s: float = Field(default=30.0, ge=0, le=3600)
    slots: int = Field(default=1, ge=1, le=64)
    # Embedded stack and tests only: input URLs may be literal loopback (their S3 stand-in). Off by default.
    allow_loopback_inputs: bool = False
    agent_id: str = Field(default="local-gpu", min_length=1)
    time_scale: float = Field(default=1.0, gt=0)
    models_file: Path = DEFAULT_MODELS_FILE
    # When set, /v1/health lists each models-file family as ready or missing files (agent.models_check).
    comfyui_root: Path | None = None
    # The fleet's shared secrets: all of them verify, so a rotation can overlap; the first signs callbacks unless
    # the box has a key of its own (key_id/key_secret), which then signs them. A registered box may have none.
    secrets: tuple[str, ...] = Field(default=(), repr=False)
    # Registration with the router's fleet registry (PUT /v1/agents/{name} every heartbeat_s): on only when
    # router_url is given, and then every field up to key_secret is needed. Off, the agent is the single
    # agent the router's settings name (HVR_AGENT_URL), as before.
    router_url: str | None = Field(default=None, pattern=r"^https?://[^/?#]+(/[^?#]*)?$")
    agent_name: str | None = Field(default=None, pattern=AGENT_NAME_PATTERN)
    tunnel_url: str | None = Field(default=None, pattern=r"^https?://")  # where the router reaches this agent
    key_id: str | None = Field(default=None, min_length=1, max_length=100)
    key_secret: str | None = Field(default=None, min_length=1, repr=False)
    heartbeat_s: float = Field(default=30.0, gt=0, le=3600)
    gpu: str | None = Field(default=None, min_length=1, max_length=100)  # unset: what nvidia-smi names
    power_w: int | None = Field(default=None, ge=1, le=5000)  # the box's draw while rendering

    @model_validator(mode="after")
    def _registration_complete(self) -> AgentSettings:
        if not self.secrets and not self.own_key:
            raise ValueError(f"refusing to start without a signing secret: set {SECRETS_ENV}, or give the box its "
                             f"own key (--agent-name, --key-id and {KEY_SECRET_ENV})")
        if self.router_url is None:
            return self
        missing = [flag for flag, value in (("--agent-name", self.agent_name), ("--tunnel-url", self.tunnel_url),
                                            ("--key-id", self.key_id), (KEY_SECRET_ENV, self.key_secret))
                   if not value]
        if missing:
            raise ValueError(f"--router-url registers this agent, which also needs {', '.join(missing)}")
        return self

    @property
    def own_key(self) -> bool:
        """The box has a key of its own (issued by `hvr agents create NAME`): it signs the box's callbacks."""
        return bool(self.agent_name and self.key_id and self.key_secret)

    @property
    def work_dir(self) -> Path:
        """Where renders wait for their upload; next to the db so it lives on the same disk."""
        return self.db_path.with_name(self.db_path.name + ".work")


def parse_secrets(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if environ is None else environ
    defaults = AgentSettings.model_fields
    parser = argparse.ArgumentParser(
        prog="hvr-agent",
        description=f"GPU-side job agent for hvr. Secrets come from ${SECRETS_ENV} (comma-separated). "
                    "`hvr-agent models check --help`: which model families the box's files can serve.",
    )
    parser.add_argument("--host", default=env.get("HVR_AGENT_HOST", defaults["host"].default))
    parser.add_argument(
        "--port", type=int, default=int(env.get("HVR_AGENT_PORT", defaults["port"].default)),
        help="0 picks a free port (the ready line says which)",
    )
    parser.add_argument("--db", dest="db_path", type=Path,
                        default=Path(env.get("HVR_AGENT_DB", defaults["db_path"].default)))
    parser.add_argument("--engine", choices=["sim", "comfyui"], default=env.get("HVR_AGENT_ENGINE", "sim"))
    parser.add_argument("--comfyui-url", default=env.get("HVR_AGENT_COMFYUI_URL", defaults["comfyui_url"].default),
                        help="comfyui engine only: ComfyUI's base URL")
    parser.add_argument("--comfyui-cache-s", type=float,
                        default=float(env.get("HVR_AGENT_COMFYUI_CACHE_S", defaults["comfyui_cache_s"].default)),
                        help="comfyui engine only: seconds the runnable models (files present, fitting the card) "
                             "are cached")
    parser.add_argument("--allow-loopback-inputs", action="store_true",
                        default=env.get(LOOPBACK_INPUTS_ENV, "").lower() in ("1", "true"),
                        help="embedded stack only: input URLs may be literal loopback addresses")
    parser.add_argument("--slots", type=int,
                        default=int(env.get("HVR_AGENT_SLOTS", defaults["slots"].default)))
    parser.add_argument("--agent-id", default=env.get("HVR_AGENT_ID", defaults["agent_id"].default))
    parser.add_argument(
        "--time-scale", type=float,
        default=float(env.get("HVR_AGENT_TIME_SCALE", defaults["time_scale"].default)),
        help="sim only: wall time = modelled GPU seconds / time_scale",
    )
    parser.add_argument("--models-file", type=Path,
                        default=Path(env.get(MODELS_FILE_ENV, DEFAULT_MODELS_FILE)))
    parser.add_argument("--comfyui-root", type=Path, default=env.get(COMFYUI_ROOT_ENV) or None,
                        help="ComfyUI's folder (holding models/): /v1/health then lists which families are ready")
    registry = parser.add_argument_group(
        "fleet registry", f"announce this box to the router every --heartbeat-s (off unless --router-url is given; "
                          f"the key's secret comes from ${KEY_SECRET_ENV})")
    registry.add_argument("--router-url", default=env.get("HVR_AGENT_ROUTER_URL") or None,
                          help="the router's API base URL")
    registry.add_argument("--agent-name", default=env.get("HVR_AGENT_NAME") or None,
                          help="this box's name in the registry, as its key was issued for")
    registry.add_argument("--tunnel-url", default=env.get("HVR_AGENT_TUNNEL_URL") or None,
                          help="where the router reaches this agent (the tunnel's public https URL)")
    registry.add_argument("--key-id", default=env.get("HVR_AGENT_KEY_ID") or None,
                          help="the key id `hvr agents create NAME` printed")
    registry.add_argument("--heartbeat-s", type=float,
                          default=float(env.get("HVR_AGENT_HEARTBEAT_S", defaults["heartbeat_s"].default)))
    registry.add_argument("--gpu", default=env.get("HVR_AGENT_GPU") or None,
                          help="the card's name (default: what nvidia-smi says)")
    registry.add_argument("--power-w", type=int, default=int(env["HVR_AGENT_POWER_W"]) if env.get(
        "HVR_AGENT_POWER_W") else None, help="the box's draw while rendering, for its energy cost per job")
    return parser


def load_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> AgentSettings:
    """Settings from argv and the environment; ConfigError (not a traceback) when they don't make sense."""
    env = os.environ if environ is None else environ
    try:
        args = build_parser(env).parse_args(argv)
    except ValueError as exc:  # a malformed HVR_AGENT_* number in the environment
        raise ConfigError(f"bad HVR_AGENT_* value: {exc}") from exc
    secrets = parse_secrets(env.get(SECRETS_ENV))
    try:
        return AgentSettings(secrets=secrets, key_secret=env.get(KEY_SECRET_ENV) or None, **vars(args))
    except ValidationError as exc:
        raise ConfigError(str(exc)) from exc
