"""`lorry --version` and shell completion (`--install-completion`, `--show-completion`)."""

from __future__ import annotations

import os
import subprocess
from importlib.metadata import version
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from tests.support.processes import lorry_executable

ROOT = Path(__file__).resolve().parents[2]


def test_version_prints_the_installed_distribution_version() -> None:
    result = CliRunner().invoke(app, ["--version"])

    assert result.exit_code == 0
    assert result.output.strip() == f"lorry {version('lorry')}"


def test_help_offers_completion_installation() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})

    assert "--install-completion" in result.output
    assert "--show-completion" in result.output


def _complete(words: str) -> str:
    """What bash completion of ``words`` offers, asked of the real ``lorry`` executable."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "_LORRY_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    done = subprocess.run(
        [str(lorry_executable())], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_bash_completion_completes_commands_and_subcommands() -> None:
    assert _complete("lorry al").split() == ["alias"]
    assert _complete("lorry audit ve").split() == ["verify"]
    assert "--namespace" in _complete("lorry ls --").split()
