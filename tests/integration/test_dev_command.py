"""`hvr dev` and `hvr sandbox` as a person meets them: a taken port in one line; each sandbox's URL and credential."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hvr.cli import main
from hvr.local.embedded import run_dev
from hvr.local.gateway import LocalHttpApi, PortInUse
from hvr.sandbox.all import Sandboxes, describe


@pytest.fixture
def taken() -> Iterator[int]:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_a_taken_port_is_one_line_and_exit_1(taken: int, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the default data dir, were it reached
    assert run_dev(port=taken, time_scale=None, api_keys=None, data_dir=tmp_path / "dev") == 1
    assert main(["dev", "--port", str(taken)]) == 1
    out, err = capsys.readouterr()
    line = f"hvr dev: port {taken} is in use — pass --port N or stop the other process\n"
    assert (out, err) == ("", line * 2)
    assert not (tmp_path / "dev").exists() and not (tmp_path / "state").exists()  # nothing started, nothing kept


def test_the_gateway_says_which_port_is_taken(taken: int) -> None:
    with pytest.raises(PortInUse, match=f"port {taken} is in use"):
        LocalHttpApi([], port=taken).start()


def test_hvr_sandbox_prints_each_url_and_the_credential_it_accepts() -> None:
    sandboxes = Sandboxes().start()
    try:
        lines = describe(sandboxes)
        text = "\n".join(lines)
        urls = dict(re.findall(r"^sandbox (\w+): (\S+)$", text, re.MULTILINE))
        credentials = re.findall(r"accepts the API (?:key|token) `([^`]+)`", text)
        assert set(urls) == {"runpod", "replicate", "veo"} and len(credentials) == 3
        runpod_key, replicate_token, veo_key = credentials
        oauth = re.search(r"OAuth token `([^`]+)`", text)
        assert oauth is not None

        def runpod(key: str) -> int:
            return httpx.get(f"{urls['runpod']}/wan-2-5/health", headers={"Authorization": f"Bearer {key}"}).status_code

        def replicate(token: str) -> int:
            return httpx.get(f"{urls['replicate']}/v1/account", headers={"Authorization": f"Token {token}"}).status_code

        def veo(headers: dict[str, str], prefix: str = "") -> httpx.Response:
            model = f"{prefix}publishers/google/models/veo-3.1-fast-generate-001"
            return httpx.post(f"{urls['veo']}/v1beta1/{model}:fetchPredictOperation", headers=headers,
                              json={"operationName": f"{model}/operations/unknown"})

        assert (runpod(runpod_key), runpod("rp_other")) == (200, 401)
        assert (replicate(replicate_token), replicate("r8_other")) == (200, 401)
        for accepted, refused, prefix in (
                ({"x-goog-api-key": veo_key}, {"x-goog-api-key": "other"}, ""),
                ({"Authorization": f"Bearer {oauth.group(1)}"}, {"Authorization": "Bearer other"},
                 "projects/p/locations/us-central1/")):
            assert veo(accepted, prefix).status_code == 404  # past the credential check: no such operation
            assert veo(refused, prefix).status_code in (400, 401)
    finally:
        sandboxes.stop()
