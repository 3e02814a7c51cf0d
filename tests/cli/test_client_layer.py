"""The CLI's client side runs without the registry: `lorry push`, `pull`, `ls` ... start
without loading it (import-linter checks the imports; this checks what a run loads)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def test_client_commands_load_no_registry_module() -> None:
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from cli.main import app\n"
        "for args in (['--help'], ['ls', '--help'], ['audit', 'verify', '--help'],"
        " ['token', 'create', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
        "print(sorted(m for m in sys.modules if m == 'registry' or m.startswith('registry.')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_local_commands_are_served_by_the_server_module(tmp_path: Path) -> None:
    """`--local` reaches the database through cli.server_commands: the registry's error on an
    unmigrated database comes out as the CLI's error, with its code."""
    env = {"LORRY_HOME": str(tmp_path), "LORRY_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    result = CliRunner().invoke(app, ["token", "ls", "--local"], env=env)
    assert result.exit_code == 1
    assert "lorry db upgrade" in result.output
    assert "[not_migrated]" in result.output
