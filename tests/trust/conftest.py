"""Fixtures of the trust tests: tokens, a live server in a thread, a CLI with the trust commands."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import typer
import uvicorn
from fastapi.testclient import TestClient
from sqlmodel import Session

from cli import admin_commands, registry_commands, server_commands, token_commands
from registry.app import create_app
from registry.config import Settings
from registry.services import tokens
from registry.services.audit import Caller
from tests.registry.conftest import (  # noqa: F401  (fixtures shared with the registry tests)
    adapter_files,
    client,
    engine_of,
    settings,
    sqlite_client,
    sqlite_settings,
)
from tests.servers import free_port


def make_token(
    test_client: TestClient,
    scopes: list[str],
    namespaces: list[str] | None = None,
    principal: str = "tester",
) -> str:
    """A token created straight in the database (as `lorry token create --local` does)."""
    with Session(engine_of(test_client)) as session:
        created = tokens.create_token(
            session,
            Caller(actor="local:test"),
            principal=principal,
            scopes=scopes,
            namespaces=namespaces or ["*"],
        )
    return created.token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def token_factory(
    sqlite_client: TestClient,  # noqa: F811
) -> Callable[..., dict[str, str]]:
    """Headers of a new token on the SQLite registry: ``token_factory(["write"], ["acme/*"])``."""

    def factory(
        scopes: list[str], namespaces: list[str] | None = None, principal: str = "tester"
    ) -> dict[str, str]:
        return bearer(make_token(sqlite_client, scopes, namespaces, principal))

    return factory


@dataclass
class LiveServer:
    url: str
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_live_server(server_settings: Settings, **config: Any) -> LiveServer:
    """The app under uvicorn (h11, header limit as `lorry serve` sets it) in a thread."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(server_settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            h11_max_incomplete_event_size=server_settings.max_header_bytes,
            **config,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.started:
            break
        if not thread.is_alive():
            pytest.fail("the live server did not start")
        time.sleep(0.05)
    httpx.get(f"{url}/healthz", timeout=5).raise_for_status()
    return LiveServer(url=url, settings=server_settings, server=server, thread=thread)


@pytest.fixture
def live_server(
    sqlite_settings: Settings,  # noqa: F811
) -> Iterator[LiveServer]:
    server = start_live_server(sqlite_settings)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def lorry_app() -> typer.Typer:
    """The `lorry` app with the trust commands registered as cli/main.py registers them."""
    app = typer.Typer(no_args_is_help=True, add_completion=False)
    server_commands.register(app)
    registry_commands.register(app)
    token_commands.register(app)
    admin_commands.register(app)
    return app
