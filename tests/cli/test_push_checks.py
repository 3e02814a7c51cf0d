"""``lorry push`` refuses what the registry would refuse before uploading anything, and
chooses files with ``--include``/``--exclude``."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import httpx
import pytest

from cli.transfer import PICKLE_SUFFIXES
from composer.file_rules import PICKLE_EXTENSIONS
from registry.validation import PICKLE_EXTENSIONS as REGISTRY_PICKLE_EXTENSIONS
from tests.support.cli import Lorry

UNREACHABLE = "http://127.0.0.1:9"


def _blob_stored(registry_url: str, path: Path) -> bool:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return httpx.head(f"{registry_url}/api/v1/blobs/sha256/{sha}").status_code == 200


def test_cli_and_registry_refuse_the_same_extensions() -> None:
    assert PICKLE_SUFFIXES is PICKLE_EXTENSIONS
    assert REGISTRY_PICKLE_EXTENSIONS is PICKLE_EXTENSIONS
    assert {".ckpt", ".pickle", ".joblib", ".dill"} <= set(PICKLE_EXTENSIONS)


def test_a_model_directory_pushed_as_an_adapter_is_refused_before_any_upload(
    lorry: Lorry, registry_url: str, tiny_llama_dir: Path
) -> None:
    result = lorry("push", tiny_llama_dir, "cli-checks/model-as-adapter")

    assert result.exit_code == 1
    assert "looks like a model directory" in result.stderr
    assert "--kind model" in result.stderr
    weights = next(tiny_llama_dir.glob("*.safetensors"))
    assert not _blob_stored(registry_url, weights)
    assert lorry("show", "cli-checks/model-as-adapter").exit_code == 1


def test_an_adapter_pushed_as_a_model_is_refused_naming_the_adapter_kind(
    lorry: Lorry, lora_adapter_dir: Path
) -> None:
    result = lorry(
        "push", lora_adapter_dir, "cli-checks/x", "--kind", "model", "--registry", UNREACHABLE
    )
    assert result.exit_code == 1
    assert "looks like a LoRA adapter" in result.stderr
    assert "--kind adapter" in result.stderr


def test_a_push_into_a_repository_of_the_other_kind_is_refused_before_upload(
    lorry: Lorry, registry_url: str, lora_adapter_dir: Path, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    assert lorry("push", lora_adapter_dir, "cli-checks/kinds").exit_code == 0
    model = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, model)
    (model / "extra.safetensors.txt").write_text("changes no weights")
    result = lorry("push", model, "cli-checks/kinds", "--kind", "model")
    assert result.exit_code == 1
    assert "kind adapter" in result.stderr
    assert not _blob_stored(registry_url, model / "extra.safetensors.txt")


@pytest.mark.parametrize("extension", [".ckpt", ".pickle", ".joblib", ".dill"])
def test_every_refused_extension_is_refused_before_contacting_the_registry(
    lorry: Lorry, lora_adapter_dir: Path, tmp_path: Path, extension: str
) -> None:
    adapter = tmp_path / "adapter"
    shutil.copytree(lora_adapter_dir, adapter)
    (adapter / f"state{extension}").write_bytes(b"\x80\x04pickle")
    result = lorry("push", adapter, "cli-checks/pickles", "--registry", UNREACHABLE)
    assert result.exit_code == 1
    assert f"state{extension}" in result.stderr
    assert f"--exclude '*{extension}'" in result.stderr


def test_include_and_exclude_choose_the_pushed_files(
    lorry: Lorry, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "adapter"
    shutil.copytree(lora_adapter_dir, adapter)
    (adapter / "optimizer.pt").write_bytes(b"\x80\x04pickle")
    (adapter / "logs").mkdir()
    (adapter / "logs" / "events.txt").write_text("step 1")
    (adapter / "notes.md").write_text("keep me")

    result = lorry(
        "push",
        adapter,
        "cli-checks/globs",
        "--json",
        "--exclude",
        "*.pt",
        "--exclude",
        "logs/",
    )
    assert result.exit_code == 0, result.stderr
    shown = json.loads(lorry("show", "cli-checks/globs@1", "--json").stdout)
    paths = {entry["path"] for entry in shown["files"]}
    assert "notes.md" in paths
    assert not any(path.startswith("logs/") or path.endswith(".pt") for path in paths)

    only = lorry(
        "push",
        adapter,
        "cli-checks/globs-include",
        "--json",
        "--include",
        "adapter_*",
        "--include",
        "README.md",
    )
    assert only.exit_code == 0, only.stderr
    shown = json.loads(lorry("show", "cli-checks/globs-include@1", "--json").stdout)
    assert {entry["path"] for entry in shown["files"]} <= {
        "adapter_config.json",
        "adapter_model.safetensors",
        "README.md",
    }

    nothing = lorry(
        "push", adapter, "cli-checks/none", "--include", "*.gguf", "--registry", UNREACHABLE
    )
    assert nothing.exit_code == 1
    assert "--include/--exclude left none" in nothing.stderr


def test_push_links_the_adapter_to_a_base_model_repository(
    lorry: Lorry, lora_adapter_dir: Path, tiny_llama_dir: Path
) -> None:
    assert lorry("push", tiny_llama_dir, "cli-checks/base", "--kind", "model").exit_code == 0

    missing = lorry(
        "push", lora_adapter_dir, "cli-checks/linked", "--base-model", "cli-checks/nope"
    )
    assert missing.exit_code == 1
    assert "not a model repository" in missing.stderr

    pushed = lorry(
        "push", lora_adapter_dir, "cli-checks/linked", "--base-model", "cli-checks/base@1"
    )
    assert pushed.exit_code == 0, pushed.stderr
    shown = json.loads(lorry("show", "cli-checks/linked", "--json").stdout)
    repo = shown.get("repository", shown)
    assert repo["base_model"] == "cli-checks/base@1"
    assert str(tiny_llama_dir) not in lorry("show", "cli-checks/linked").stdout


def test_the_trainer_state_files_the_registry_scans_are_not_refused_by_the_cli() -> None:
    from cli.transfer import _check_name

    _check_name("last-checkpoint/optimizer.pt")
    _check_name("training_args.bin")
    with pytest.raises(Exception, match="pickled files"):
        _check_name("pytorch_model.bin")
