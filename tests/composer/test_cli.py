"""`lorry compose` through Typer's runner and as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tests.composer.helpers import compose_app as _app


def _write_recipe(tmp_path: Path, adapter_a: Path, adapter_b: Path) -> Path:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "method: linear\n"
        "inputs:\n"
        f"  - adapter: {adapter_a}\n    weight: 1.0\n"
        f"  - adapter: {adapter_b}\n    weight: -0.5\n"
        "output:\n  rank: 4\n"
    )
    return recipe


def test_compose_command_writes_the_adapter_and_prints_json(
    tmp_path: Path, adapter_a: Path, adapter_b: Path
) -> None:
    recipe = _write_recipe(tmp_path, adapter_a, adapter_b)
    result = CliRunner().invoke(
        _app(), ["compose", str(recipe), "--out", str(tmp_path / "out"), "--json"]
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["method"] == "linear" and report["output_type"] == "adapter"
    assert all(module["rank"] == 4 for module in report["modules"])
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_compose_command_shows_a_summary_and_refuses_an_existing_output(
    tmp_path: Path, adapter_a: Path, adapter_b: Path
) -> None:
    recipe = _write_recipe(tmp_path, adapter_a, adapter_b)
    runner = CliRunner()
    first = runner.invoke(_app(), ["compose", str(recipe), "--out", str(tmp_path / "out")])
    assert first.exit_code == 0, first.output
    assert "Composed" in first.stdout and "max relative error" in first.stdout

    again = runner.invoke(_app(), ["compose", str(recipe), "--out", str(tmp_path / "out")])
    assert again.exit_code == 1
    assert "not empty" in again.stderr
    assert "lorry compose --overwrite" in " ".join(again.stderr.split())
    forced = runner.invoke(
        _app(), ["compose", str(recipe), "--out", str(tmp_path / "out"), "--overwrite"]
    )
    assert forced.exit_code == 0, forced.output


def test_compose_command_reports_a_bad_recipe_with_exit_code_1(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("method: averaging\ninputs:\n  - adapter: ./x\n")
    result = CliRunner().invoke(_app(), ["compose", str(recipe), "--out", str(tmp_path / "out")])

    assert result.exit_code == 1
    assert "unknown method 'averaging'" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_compose_command_requires_out(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["compose", str(tmp_path / "recipe.yaml")])
    assert result.exit_code == 1
    assert "--out" in result.stderr


def test_lorry_process_composes_a_recipe(tmp_path: Path, adapter_a: Path, adapter_b: Path) -> None:
    recipe = _write_recipe(tmp_path, adapter_a, adapter_b)
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "compose",
            str(recipe),
            "--out",
            str(tmp_path / "out"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    assert json.loads(process.stdout)["out_dir"] == str(tmp_path / "out")
    assert (tmp_path / "out" / "README.md").is_file()


def test_local_compose_of_registry_references_says_they_compose_on_the_registry(
    tmp_path: Path, adapter_a: Path
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "method: linear\n"
        "inputs:\n"
        f"  - adapter: {adapter_a}\n"
        "  - adapter: acme/sql-gen@production\n    weight: 0.5\n"
    )

    result = CliRunner().invoke(_app(), ["compose", str(recipe), "--out", str(tmp_path / "o")])

    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "acme/sql-gen@production: registry reference(s)" in message
    assert "--to NAMESPACE/NAME" in message and "[registry_reference]" in message
    assert not (tmp_path / "o").exists()
