"""Fixtures of the trust tests: tokens, a live server in a thread, a CLI with the trust commands."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer

from cli import admin_commands, registry_commands, server_commands, token_commands
from registry.config import Settings
from tests.support.live import LiveServer, serving


@pytest.fixture
def live_server(sqlite_settings: Settings) -> Iterator[LiveServer]:
    with serving(sqlite_settings) as server:
        yield server


@pytest.fixture(scope="session")
def lorry_app() -> typer.Typer:
    """The `lorry` app with the trust commands registered as cli/main.py registers them."""
    app = typer.Typer(no_args_is_help=True, add_completion=False)
    server_commands.register(app)
    registry_commands.register(app)
    token_commands.register(app)
    admin_commands.register(app)
    return app
