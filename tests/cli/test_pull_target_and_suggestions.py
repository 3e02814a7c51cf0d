"""`lorry pull` into a directory of another model, and "did you mean …?" for mistyped
repositories and aliases, against a live registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import Lorry

REPO = "cli-suggest/sql-gen"


@pytest.fixture(scope="module")
def published(registry_url: str, lora_adapter_dir: Path) -> str:
    """``cli-suggest/sql-gen`` version 1, aliased ``production``."""
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(
        app,
        ["push", str(lora_adapter_dir), REPO, "--alias", "production"],
        env={"LORRY_URL": registry_url},
    )
    assert result.exit_code == 0, result.output
    return REPO


def test_pull_into_a_directory_of_other_files_is_refused_and_writes_nothing(
    lorry: Lorry, published: str, tmp_path: Path
) -> None:
    target = tmp_path / "model"
    (target / "sub").mkdir(parents=True)
    (target / "tokenizer.json").write_text("{}")
    (target / "sub" / "shard.safetensors").write_bytes(b"x")

    result = lorry("pull", f"{published}@production", target)

    assert result.exit_code == 1
    assert "[directory_not_empty]" in result.output
    assert "tokenizer.json" in result.output and "--overwrite" in result.output
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        "sub/shard.safetensors",
        "tokenizer.json",
    ]


def test_pull_with_overwrite_leaves_exactly_the_version(
    lorry: Lorry, published: str, tmp_path: Path
) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "tokenizer.json").write_text("{}")

    result = lorry("pull", f"{published}@production", target, "--overwrite", "--json")

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["removed_files"] == ["tokenizer.json"]
    on_disk = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert on_disk == sorted(answer["files"])


def test_pulling_again_into_the_same_directory_needs_no_overwrite(
    lorry: Lorry, published: str, tmp_path: Path
) -> None:
    target = tmp_path / "model"
    assert lorry("pull", published, target).exit_code == 0

    again = lorry("pull", f"{published}@production", target, "--json")

    assert again.exit_code == 0, again.output
    answer = json.loads(again.stdout)
    assert answer["downloaded_files"] == [] and answer["removed_files"] == []


def test_a_mistyped_repository_gets_a_suggestion(lorry: Lorry, published: str) -> None:
    result = lorry("show", "cli-suggest/sql-gne@production")

    assert result.exit_code == 1
    assert "[repository_not_found]" in result.output
    assert f"did you mean {published}?" in result.output


def test_a_mistyped_alias_gets_a_suggestion(lorry: Lorry, published: str, tmp_path: Path) -> None:
    result = lorry("pull", f"{published}@prodution", tmp_path / "out")

    assert result.exit_code == 1
    assert "[alias_not_found]" in result.output
    assert f"did you mean {published}@production?" in result.output


def test_nothing_close_gets_no_suggestion(lorry: Lorry, published: str) -> None:
    result = lorry("show", "zzz-nothing/qqq-nowhere")

    assert result.exit_code == 1
    assert "[repository_not_found]" in result.output
    assert "did you mean" not in result.output
