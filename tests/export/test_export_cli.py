"""``lorry export gguf`` from a directory and from a registry reference (a live registry)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from cli import export_commands, registry_commands
from tests.export.reading import metadata, tensors

Run = Callable[..., Result]


def _app() -> typer.Typer:
    app = typer.Typer()
    registry_commands.register(app)
    export_commands.register(app)
    return app


@pytest.fixture
def lorry(registry_url: str) -> Run:
    app = _app()
    runner = CliRunner()

    def invoke(*args: str | Path) -> Result:
        env = {"LORRY_URL": registry_url, "COLUMNS": "200"}
        return runner.invoke(app, [str(arg) for arg in args], env=env)

    return invoke


@pytest.fixture
def local() -> Run:
    app = _app()
    runner = CliRunner()

    def invoke(*args: str | Path) -> Result:
        return runner.invoke(app, [str(arg) for arg in args], env={"COLUMNS": "200"})

    return invoke


def test_export_of_a_local_adapter_prints_json_and_writes_a_lora_gguf(
    local: Run, lora_adapter_dir: Path, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "adapter.gguf"
    result = local("export", "gguf", lora_adapter_dir, out, "--base", tiny_llama_dir, "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["kind"] == "adapter" and printed["architecture"] == "llama"
    assert printed["size"] == out.stat().st_size
    assert metadata(out)["adapter.type"] == "lora"


def test_export_of_a_local_model_in_q8_0(
    local: Run, llama_with_tokenizer: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model.gguf"
    result = local("export", "gguf", llama_with_tokenizer, out, "--outtype", "q8_0")
    assert result.exit_code == 0, result.output
    assert "Exported" in result.stdout and "Ollama" in result.stdout
    assert metadata(out)["general.file_type"] == 7
    assert tensors(out)["blk.0.attn_q.weight"][0] == "Q8_0"


def test_refusals_exit_1_with_the_reason_and_write_nothing(
    local: Run, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model.gguf"
    no_tokenizer = local("export", "gguf", tiny_llama_dir, out)
    assert no_tokenizer.exit_code == 1
    assert "no tokenizer.json" in no_tokenizer.output
    assert "unsupported_tokenizer" in no_tokenizer.output
    bad_type = local("export", "gguf", tiny_llama_dir, out, "--outtype", "q3_k")
    assert bad_type.exit_code == 1 and "--outtype" in bad_type.output
    missing = local("export", "gguf", tmp_path / "no such dir", out)
    assert missing.exit_code == 1 and "neither a directory" in missing.output
    assert list(tmp_path.iterdir()) == []


def test_export_from_a_registry_reference(
    lorry: Run, lora_adapter_dir: Path, llama_with_tokenizer: Path, tmp_path: Path
) -> None:
    pushed = lorry("push", lora_adapter_dir, "export-test/sql-gen", "--alias", "production")
    assert pushed.exit_code == 0, pushed.output
    model = lorry("push", llama_with_tokenizer, "export-test/tiny", "--kind", "model")
    assert model.exit_code == 0, model.output

    out = tmp_path / "adapter.gguf"
    # the adapter's base_model_name_or_path is the local tiny Llama directory: converted here
    result = lorry("export", "gguf", "export-test/sql-gen@production", out, "--json", "--local")
    assert result.exit_code == 0, result.output
    meta = metadata(out)
    assert meta["general.type"] == "adapter"
    assert meta["general.name"] == "export-test/sql-gen@1"

    # the base as a registry reference: the registry exports it
    out2 = tmp_path / "adapter-2.gguf"
    result = lorry(
        "export", "gguf", "export-test/sql-gen@1", out2, "--base", "export-test/tiny@latest"
    )
    assert result.exit_code == 0, result.output
    assert tensors(out2).keys() == tensors(out).keys()

    # a local adapter whose base_model_name_or_path is a registry repository
    local_copy = tmp_path / "local-adapter"
    shutil.copytree(lora_adapter_dir, local_copy)
    config = json.loads((local_copy / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "export-test/tiny@1"
    (local_copy / "adapter_config.json").write_text(json.dumps(config))
    out3 = tmp_path / "adapter-3.gguf"
    result = lorry("export", "gguf", local_copy, out3)
    assert result.exit_code == 0, result.output
    assert tensors(out3).keys() == tensors(out).keys()

    model_out = tmp_path / "tiny.gguf"
    result = lorry("export", "gguf", "export-test/tiny", model_out, "--outtype", "bf16")
    assert result.exit_code == 0, result.output
    assert metadata(model_out)["tokenizer.ggml.pre"] == "llama-bpe"


def test_export_of_a_bad_reference_fails_and_writes_nothing(lorry: Run, tmp_path: Path) -> None:
    out = tmp_path / "x.gguf"
    result = lorry("export", "gguf", "export-test/does-not-exist@3", out)
    assert result.exit_code == 1
    assert "not_found" in result.output
    assert not out.exists()
