"""`lorry export gguf ADAPTER --merge-into BASE` with registry references: the registry
builds the merged file (a real `lorry serve`), the same bytes as `--local` merges here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cli.main import app

NS = "merge-cli"


@pytest.fixture
def lorry(registry_url: str) -> CliRunner:
    return CliRunner(env={"LORRY_URL": registry_url, "COLUMNS": "200"})


def run(runner: CliRunner, *args: str | Path) -> Result:
    return runner.invoke(app, [str(arg) for arg in args])


def test_merge_into_a_registry_base_is_a_registry_export_equal_to_the_local_merge(
    lorry: CliRunner, wide_llama: Path, wide_adapter: Path, tmp_path: Path
) -> None:
    base = run(lorry, "push", wide_llama, f"{NS}/llama", "--kind", "model")
    assert base.exit_code == 0, base.output
    adapter = run(lorry, "push", wide_adapter, f"{NS}/sql-formal", "--alias", "production")
    assert adapter.exit_code == 0, adapter.output
    merge = ("--merge-into", f"{NS}/llama", "--outtype", "q4_k_m")

    # no OUT: the registry builds and keeps it
    built = run(lorry, "export", "gguf", f"{NS}/sql-formal@production", *merge, "--json")
    assert built.exit_code == 0, built.output
    printed = json.loads(built.stdout)
    assert printed["out"] is None and printed["registry"]["reused"] is False
    assert printed["merged_into"]["repository"] == f"{NS}/llama"
    assert printed["outtype"] == "q4_k_m" and printed["kind"] == "model"
    assert {"gguf", "torch", "numpy", "lorry"} <= set(printed["libraries"])
    path = printed["registry"]["path"]
    assert path.startswith("merged-llama-") and path.endswith("-q4_k_m.gguf")

    # with OUT: the same export, downloaded and verified
    out = tmp_path / "phone.gguf"
    again = run(lorry, "export", "gguf", f"{NS}/sql-formal@production", out, *merge)
    assert again.exit_code == 0, again.output
    assert "reused the registry's" in again.stdout and f"merged into {NS}/llama@1" in again.stdout
    assert hashlib.sha256(out.read_bytes()).hexdigest() == printed["sha256"]

    # --local pulls both and merges on this machine: the same bytes
    local_out = tmp_path / "local.gguf"
    local = run(lorry, "export", "gguf", f"{NS}/sql-formal@1", local_out, *merge, "--local")
    assert local.exit_code == 0, local.output
    assert "built by the registry" not in local.stdout
    assert local_out.read_bytes() == out.read_bytes()

    listed = run(lorry, "exports", f"{NS}/llama@1")
    assert listed.exit_code == 0, listed.output
    assert "adapters merged into" in listed.stdout and f"{NS}/sql-formal@1" in listed.stdout

    refused = run(lorry, "export", "gguf", f"{NS}/sql-formal@1", *merge, "--local")
    assert refused.exit_code == 1 and "OUT.gguf" in refused.output
