"""The operator files in infra/tunnel/ stay in step with the code they configure."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from agent.config import build_parser
from router.workflows import ModelFiles

TUNNEL = Path(__file__).resolve().parents[2] / "infra" / "tunnel"


def test_the_models_example_names_the_same_files_as_the_routers_models_yaml() -> None:
    assert ModelFiles.load(TUNNEL / "models.example.yaml") == ModelFiles.load()


def test_the_tunnel_publishes_the_agent_and_never_comfyui() -> None:
    config = yaml.safe_load((TUNNEL / "cloudflared.yml").read_text())
    services = [rule["service"] for rule in config["ingress"]]

    assert services[-1] == "http_status:404"
    assert services[:-1] == ["http://127.0.0.1:8787"]
    assert "8188" not in " ".join(services)


def test_the_systemd_unit_starts_the_comfyui_engine_with_flags_the_agent_accepts() -> None:
    text = (TUNNEL / "hvr-agent.service").read_text().replace("\\\n", " ")
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart="))[1:]

    args = build_parser({}).parse_args(argv)

    assert args.engine == "comfyui" and args.host == "127.0.0.1" and args.port == 8787
    assert "HVR_AGENT_SECRETS" not in exec_start  # secrets come from the EnvironmentFile, never argv
