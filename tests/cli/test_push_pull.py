"""``lorry push`` / ``lorry pull`` against a live registry: round trip, dedup, verification."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.support.cli import Lorry, variant_of
from tests.support.factories import load_tiny_llama

PUSH_KEYS = {"repository", "version", "digest", "commit", "ref", "uploaded_bytes", "skipped_bytes"}


def _files(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _push_json(lorry: Lorry, directory: Path, repository: str, *args: str) -> dict:
    result = lorry("push", directory, repository, "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_push_then_pull_by_number_alias_and_digest_gives_identical_files_that_peft_loads(
    lorry: Lorry, lora_adapter_dir: Path, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    from peft import PeftModel

    pushed = _push_json(
        lorry, lora_adapter_dir, "cli-tests/roundtrip", "--alias", "staging", "-m", "first"
    )
    assert PUSH_KEYS <= pushed.keys()
    assert pushed["repository"] == "cli-tests/roundtrip"
    assert pushed["version"] == 1
    assert pushed["ref"] == "cli-tests/roundtrip@1"
    assert pushed["digest"].startswith("sha256:") and len(pushed["digest"]) == 71
    assert pushed["commit"] == pushed["digest"][7:47]
    assert "staging" in pushed["aliases"]

    original = _files(lora_adapter_dir)
    for ref in ("1", "staging", pushed["digest"], "latest"):
        target = tmp_path / ref.replace(":", "-")
        result = lorry("pull", f"cli-tests/roundtrip@{ref}", target, "--json")
        assert result.exit_code == 0, result.stderr
        pulled = json.loads(result.stdout)
        assert pulled["version"] == 1 and pulled["digest"] == pushed["digest"]
        files = _files(target)
        for name, content in original.items():
            assert files[name] == content, f"{name} differs after pulling @{ref}"

    base = load_tiny_llama(tiny_llama_dir)
    model = PeftModel.from_pretrained(base, tmp_path / "1")
    weights = load_file(lora_adapter_dir / "adapter_model.safetensors")
    name, expected = next((k, v) for k, v in weights.items() if "lora_B" in k)
    loaded = dict(model.named_parameters())
    (match,) = [v for k, v in loaded.items() if k.replace(".default", "") == name]
    assert torch.equal(match.detach(), expected)


def test_pull_without_ref_takes_the_latest_version(
    lorry: Lorry, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    _push_json(lorry, lora_adapter_dir, "cli-tests/latest")
    changed = variant_of(lora_adapter_dir, tmp_path / "v2", "second")
    second = _push_json(lorry, changed, "cli-tests/latest", "-m", "again")
    assert second["version"] == 2
    assert second["uploaded_files"] == ["notes.txt"]

    result = lorry("pull", "cli-tests/latest", tmp_path / "out", "--json")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["version"] == 2


def test_second_push_of_identical_files_uploads_nothing(
    lorry: Lorry, lora_adapter_dir: Path
) -> None:
    first = _push_json(lorry, lora_adapter_dir, "cli-tests/dedup-a")
    second = _push_json(lorry, lora_adapter_dir, "cli-tests/dedup-b")

    total = sum(path.stat().st_size for path in lora_adapter_dir.rglob("*") if path.is_file())
    assert first["uploaded_bytes"] + first["skipped_bytes"] == total
    assert second["uploaded_bytes"] == 0
    assert second["skipped_bytes"] == total
    assert second["uploaded_files"] == []
    assert second["version"] == 1


def test_pushing_the_files_of_an_existing_version_again_is_refused(
    lorry: Lorry, lora_adapter_dir: Path
) -> None:
    _push_json(lorry, lora_adapter_dir, "cli-tests/twice")

    result = lorry("push", lora_adapter_dir, "cli-tests/twice")

    assert result.exit_code == 1
    assert "version 1" in result.stderr
    assert "conflict" in result.stderr


def test_push_prints_the_new_ref_with_its_digest(lorry: Lorry, lora_adapter_dir: Path) -> None:
    result = lorry("push", lora_adapter_dir, "cli-tests/human")

    assert result.exit_code == 0, result.stderr
    ref, digest = result.stdout.split()
    assert ref == "cli-tests/human@1"
    assert digest.startswith("(sha256:") and digest.endswith(")")


def test_push_of_a_pickle_is_refused_before_contacting_the_registry(
    lorry: Lorry, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "adapter"
    shutil.copytree(lora_adapter_dir, adapter)
    (adapter / "adapter_model.bin").write_bytes(b"\x80\x04pickle")

    result = lorry("push", adapter, "cli-tests/pickle", "--registry", "http://127.0.0.1:9")

    assert result.exit_code == 1
    assert "adapter_model.bin" in result.stderr
    assert "safetensors" in result.stderr
    assert lorry("show", "cli-tests/pickle").exit_code == 1


def test_push_rejected_by_the_registry_prints_its_message_and_leaves_no_version(
    lorry: Lorry, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    adapter = tmp_path / "adapter"
    shutil.copytree(lora_adapter_dir, adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["peft_type"] = "IA3"
    (adapter / "adapter_config.json").write_text(json.dumps(config))

    result = lorry("push", adapter, "cli-tests/ia3")

    assert result.exit_code == 1
    assert "error:" in result.stderr
    assert "IA3" in result.stderr or "LORA" in result.stderr
    assert "unsupported_adapter_type" in result.stderr
    missing = lorry("show", "cli-tests/ia3", "--json")
    assert missing.exit_code == 1
    assert "repository_not_found" in missing.stderr


def test_pull_of_a_missing_version_prints_the_registry_message(
    lorry: Lorry, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    _push_json(lorry, lora_adapter_dir, "cli-tests/missing")

    result = lorry("pull", "cli-tests/missing@99", tmp_path / "out")

    assert result.exit_code == 1
    assert "version_not_found" in result.stderr
    assert not (tmp_path / "out" / "adapter_config.json").exists()


def test_pull_keeps_verified_files_and_replaces_damaged_ones(
    lorry: Lorry, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    _push_json(lorry, lora_adapter_dir, "cli-tests/resume")
    target = tmp_path / "out"
    assert lorry("pull", "cli-tests/resume", target).exit_code == 0
    (target / "adapter_config.json").write_text("{}")

    result = lorry("pull", "cli-tests/resume", target, "--json")

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["downloaded_files"] == ["adapter_config.json"]
    assert "adapter_model.safetensors" in report["kept_files"]
    assert (
        _files(target)["adapter_config.json"]
        == (lora_adapter_dir / "adapter_config.json").read_bytes()
    )
    assert not [p for p in target.iterdir() if p.name.endswith(".lorry-partial")]


def test_pull_that_cannot_write_a_file_reports_it_and_exits_1(
    lorry: Lorry, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    _push_json(lorry, lora_adapter_dir, "cli-tests/blocked")
    target = tmp_path / "out"
    (target / "adapter_config.json").mkdir(parents=True)

    result = lorry("pull", "cli-tests/blocked", target)

    assert result.exit_code == 1
    assert "adapter_config.json" in result.stderr
    assert "Traceback" not in result.output
    assert not [p for p in target.iterdir() if p.name.endswith(".lorry-partial")]
