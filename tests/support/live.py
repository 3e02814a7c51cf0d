"""The real app served by uvicorn in a thread of the test process, on a loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from registry.app import create_app
from registry.config import Settings

STARTUP_TIMEOUT_S = 30.0


@dataclass
class LiveServer:
    url: str
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def start_live_server(
    server_settings: Settings, *, app: ASGIApp | None = None, **config: Any
) -> LiveServer:
    """``app`` (by default the registry's on ``server_settings``) under uvicorn (h11, header
    limit as `lorry serve` sets it) in a thread, on a socket bound before the thread starts
    (no other process can take the port in between); returns once ``/healthz`` answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app if app is not None else create_app(server_settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            h11_max_incomplete_event_size=server_settings.max_header_bytes,
            **config,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            pytest.fail(f"the live server on {url} did not start")
        time.sleep(0.05)
    live = LiveServer(url=url, settings=server_settings, server=server, thread=thread, sock=sock)
    try:
        httpx.get(f"{url}/healthz", timeout=5).raise_for_status()
    except httpx.HTTPError:
        live.stop()
        raise
    return live


@contextmanager
def serving(
    server_settings: Settings, *, app: ASGIApp | None = None, **config: Any
) -> Iterator[LiveServer]:
    """``start_live_server`` as a context manager: the server stops on leaving."""
    live = start_live_server(server_settings, app=app, **config)
    try:
        yield live
    finally:
        live.stop()
