"""The models file's per-file sizes and sha256, `hvr-agent models check`, and the health check's `families`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from agent.__main__ import main
from agent.app import create_app
from agent.config import AgentSettings
from agent.engines.sim import SimEngine
from router.workflows.models import DEFAULT_MODELS_FILE, LOCK_FILE_NAME, ModelFiles, ModelFilesError

# Three families over four files: `small` complete, `big` with a missing file and one of the wrong size.
TEXT_ENCODER, VAE, BIG, MISSING = b"encoder bytes", b"vae bytes!", b"only part of it", None
HAS = {"text_encoders/te.safetensors": TEXT_ENCODER, "vae/vae.safetensors": VAE,
       "diffusion_models/big.safetensors": BIG}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_models(path: Path, files: dict[str, object] | None) -> Path:
    section: dict[str, object] = {"models": {
        "small": {"text_encoder": "te.safetensors", "vae": "vae.safetensors"},
        "big": {"t2v": "big.safetensors", "i2v": "gone.safetensors", "text_encoder": "te.safetensors",
                "vae": "vae.safetensors"},
    }}
    if files is not None:
        section["files"] = files
    path.write_text("# a comment\n" + yaml.safe_dump({"comfyui": section}))
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "ComfyUI"
    for relative, data in HAS.items():
        (root / "models" / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / "models" / relative).write_bytes(data)
    return root


@pytest.fixture
def models_file(tmp_path: Path) -> Path:
    return write_models(tmp_path / "models.yaml", {
        "te.safetensors": {"size_bytes": len(TEXT_ENCODER), "sha256": sha(TEXT_ENCODER)},
        "vae.safetensors": {"size_bytes": len(VAE), "sha256": None},
        "big.safetensors": {"size_bytes": 4000, "sha256": None},  # what is on disk is shorter: wrong
        "gone.safetensors": {"size_bytes": 1234},
    })


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["models", "check", *argv])
    return code, capsys.readouterr().out


# -- the loader ---------------------------------------------------------------------------------------------------


def test_the_shipped_models_file_loads_with_its_figures_and_no_invented_checksum() -> None:
    models = ModelFiles.load()
    named = {name for roles in models.files.values() for name in roles.values()}
    assert set(models.facts) == named
    assert all(facts.sha256 is None for facts in models.facts.values())
    assert models.fact("humo_17B_fp8_e4m3fn.safetensors").size_bytes == 17_058_372_152


def test_files_section_is_optional(tmp_path: Path) -> None:
    models = ModelFiles.load(write_models(tmp_path / "m.yaml", None))
    assert models.facts == {} and models.fact("te.safetensors").size_bytes is None
    assert models.file("small", "vae") == "vae.safetensors"


@pytest.mark.parametrize(("entry", "named"), [
    ({"size_bytes": -3}, "comfyui.files.te.safetensors.size_bytes"),
    ({"size_bytes": "12"}, "comfyui.files.te.safetensors.size_bytes"),
    ({"sha256": "abc"}, "comfyui.files.te.safetensors.sha256"),
    ({"sha256": "A" * 64}, "comfyui.files.te.safetensors.sha256"),
    ({"size": 12}, "comfyui.files.te.safetensors.size"),
])
def test_a_bad_figure_is_refused_naming_the_file_and_field(tmp_path: Path, entry: object, named: str) -> None:
    with pytest.raises(ModelFilesError, match=named.replace(".", r"\.")):
        ModelFiles.load(write_models(tmp_path / "m.yaml", {"te.safetensors": entry}))


def test_figures_for_a_file_no_model_loads_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFilesError, match=r"typo\.safetensors"):
        ModelFiles.load(write_models(tmp_path / "m.yaml", {"typo.safetensors": {"size_bytes": 1}}))


# -- hvr-agent models check -----------------------------------------------------------------------------------------


def test_check_lists_present_missing_and_wrong_files(tree: Path, models_file: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "--models", str(models_file), "--comfyui-root", str(tree), "--json")
    report = json.loads(out)

    assert code == 1 and report["complete"] is False
    assert report["families"]["small"]["status"] == "ready"
    big = report["families"]["big"]
    assert big["status"] == "missing files"
    assert {role: f["state"] for role, f in big["files"].items()} == {
        "t2v": "wrong", "i2v": "missing", "text_encoder": "present", "vae": "present"}
    assert big["files"]["t2v"]["detail"] == f"size {len(BIG)}, expected 4000"
    assert big["files"]["text_encoder"]["sha256"] == sha(TEXT_ENCODER)  # a recorded sha256 is verified
    assert big["files"]["vae"]["sha256"] is None  # none recorded: not hashed
    assert (report["download_bytes"], report["download_unknown_size"]) == (4000 + 1234, 0)


def test_check_prints_a_table_by_default(tree: Path, models_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "--models", str(models_file), "--comfyui-root", str(tree))
    assert code == 1
    assert "small: ready" in out and "big: missing files" in out
    assert "missing  i2v" in out and "wrong    t2v" in out and "(size 15, expected 4000)" in out
    assert out.strip().endswith("to download: 2 files, 5.23 KB")


def test_exit_0_when_the_families_checked_are_complete(tree: Path, models_file: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--models", str(models_file), "--comfyui-root", str(tree), "--family", "small")[0] == 0


def test_a_different_sha256_makes_the_file_wrong(tree: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    models = write_models(tmp_path / "models.yaml", {"vae.safetensors": {"sha256": sha(b"other")}})
    code, out = run(capsys, "--models", str(models), "--comfyui-root", str(tree), "--family", "small", "--json")
    vae = json.loads(out)["families"]["small"]["files"]["vae"]
    assert code == 1 and vae["state"] == "wrong" and vae["detail"].startswith(f"sha256 {sha(VAE)}")


def test_record_writes_a_lock_that_later_checks_verify(tree: Path, models_file: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    before = models_file.read_text()
    code, out = run(capsys, "--models", str(models_file), "--comfyui-root", str(tree), "--record")
    lock = yaml.safe_load((models_file.parent / LOCK_FILE_NAME).read_text())

    assert code == 1 and "recorded sizes and sha256" in out
    assert models_file.read_text() == before  # the models file and its comments stay as written
    assert lock["files"] == {
        "te.safetensors": {"size_bytes": len(TEXT_ENCODER), "sha256": sha(TEXT_ENCODER)},
        "vae.safetensors": {"size_bytes": len(VAE), "sha256": sha(VAE)},
    }  # the wrong-size file is not recorded, the missing one can't be
    # Same size, other bytes: the recorded sha256 catches it.
    (tree / "models" / "vae" / "vae.safetensors").write_bytes(b"VAE BYTES?")
    code, out = run(capsys, "--models", str(models_file), "--comfyui-root", str(tree), "--family", "small", "--json")
    assert code == 1 and json.loads(out)["families"]["small"]["files"]["vae"]["state"] == "wrong"


def test_check_without_a_comfyui_root_or_with_a_bad_models_file_exits_2(
        tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HVR_AGENT_COMFYUI_ROOT", raising=False)
    assert run(capsys, "--models", str(DEFAULT_MODELS_FILE))[0] == 2
    assert run(capsys, "--comfyui-root", str(tmp_path / "nowhere"))[0] == 2
    bad = write_models(tmp_path / "bad.yaml", {"te.safetensors": {"size_bytes": 0}})
    assert main(["models", "check", "--models", str(bad), "--comfyui-root", str(tree)]) == 2
    assert "comfyui.files.te.safetensors.size_bytes" in capsys.readouterr().err
    assert run(capsys, "--models", str(bad.with_name("models.yaml")), "--comfyui-root", str(tree))[0] == 2


# -- the health check -----------------------------------------------------------------------------------------------


def health(tmp_path: Path, **settings: object) -> dict[str, object]:
    agent = AgentSettings(secrets=("s3cret",), db_path=tmp_path / "agent.db", **settings)  # type: ignore[arg-type]
    body: dict[str, object] = TestClient(create_app(agent, SimEngine(DEFAULT_MODELS_FILE))).get("/v1/health").json()
    return body


def test_health_lists_which_families_the_installed_files_serve(tree: Path, models_file: Path,
                                                               tmp_path: Path) -> None:
    assert health(tmp_path, models_file=models_file, comfyui_root=tree)["families"] == {
        "small": "ready", "big": "missing files"}


def test_health_has_no_families_without_a_comfyui_root(tmp_path: Path) -> None:
    assert health(tmp_path)["families"] is None
