"""`lorry export gguf NS/NAME@REF` asks the registry to build the export; `lorry exports`
lists them (a real `lorry serve`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cli.main import app

NS = "export-cli"


@pytest.fixture
def lorry(registry_url: str) -> CliRunner:
    return CliRunner(env={"LORRY_URL": registry_url, "COLUMNS": "200"})


def run(runner: CliRunner, *args: str | Path) -> Result:
    return runner.invoke(app, [str(arg) for arg in args])


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_of_a_reference_is_built_by_the_registry_and_downloaded(
    lorry: CliRunner, llama_with_tokenizer: Path, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    model = run(lorry, "push", llama_with_tokenizer, f"{NS}/tiny", "--kind", "model")
    assert model.exit_code == 0, model.output
    adapter = run(lorry, "push", lora_adapter_dir, f"{NS}/sql-formal", "--alias", "production")
    assert adapter.exit_code == 0, adapter.output

    out = tmp_path / "adapter.gguf"
    built = run(
        lorry, "export", "gguf", f"{NS}/sql-formal@production", out, "--base", f"{NS}/tiny@1"
    )
    assert built.exit_code == 0, built.output
    assert "built by the registry" in built.stdout
    assert f"{NS}/sql-formal@1/adapter.gguf" in built.stdout
    assert "ADAPTER ./adapter.gguf" in built.stdout

    listed = run(lorry, "exports", f"{NS}/sql-formal@production", "--json")
    assert listed.exit_code == 0, listed.output
    [export] = json.loads(listed.stdout)["items"]
    assert export["path"] == "adapter.gguf"
    assert sha256_of(out) == export["sha256"] and out.stat().st_size == export["size"]
    table = run(lorry, "exports", f"{NS}/sql-formal@1")
    assert table.exit_code == 0, table.output
    assert "adapter.gguf" in table.stdout and f"base {NS}/tiny@1" in table.stdout

    # asked again: the registry's file answers, no second job
    again_out = tmp_path / "again.gguf"
    again = run(
        lorry,
        "export",
        "gguf",
        f"{NS}/sql-formal@1",
        again_out,
        "--base",
        f"{NS}/tiny",
        "--json",
    )
    assert again.exit_code == 0, again.output
    printed = json.loads(again.stdout)
    assert printed["registry"]["reused"] is True
    assert printed["registry"]["job"] == export["job"]
    assert (printed["kind"], printed["architecture"], printed["sha256"]) == (
        "adapter",
        "llama",
        export["sha256"],
    )
    assert again_out.read_bytes() == out.read_bytes()

    # --local converts on this machine: the same bytes as the registry's
    local_out = tmp_path / "local.gguf"
    local = run(
        lorry,
        "export",
        "gguf",
        f"{NS}/sql-formal@1",
        local_out,
        "--base",
        llama_with_tokenizer,
        "--local",
    )
    assert local.exit_code == 0, local.output
    assert "built by the registry" not in local.stdout
    assert local_out.read_bytes() == out.read_bytes()


def test_registry_export_refusals_exit_1_and_write_nothing(
    lorry: CliRunner, tiny_llama_dir: Path, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    pushed = run(lorry, "push", tiny_llama_dir, f"{NS}/bare", "--kind", "model")
    assert pushed.exit_code == 0, pushed.output
    out = tmp_path / "model.gguf"

    no_tokenizer = run(lorry, "export", "gguf", f"{NS}/bare", out)
    assert no_tokenizer.exit_code == 1
    assert "unsupported_tokenizer" in no_tokenizer.output
    assert "failed" in no_tokenizer.output

    local_base = run(lorry, "export", "gguf", f"{NS}/bare@1", out, "--base", str(tiny_llama_dir))
    assert local_base.exit_code == 1
    assert "--local" in local_base.output

    unknown = run(lorry, "exports", f"{NS}/nothing-here")
    assert unknown.exit_code == 1 and "repository_not_found" in unknown.output
    assert list(tmp_path.iterdir()) == []
