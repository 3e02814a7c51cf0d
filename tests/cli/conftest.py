"""The CLI tests run `lorry` in-process against a real ``lorry serve`` (``registry_url``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.support.cli import Lorry


@pytest.fixture
def lorry(registry_url: str) -> Lorry:
    """Run a ``lorry`` command in-process against the live registry."""
    from cli.main import app

    runner = CliRunner()

    def invoke(*args: str | Path) -> Result:
        env = {"LORRY_URL": registry_url, "COLUMNS": "200"}
        return runner.invoke(app, [str(arg) for arg in args], env=env)

    return invoke
