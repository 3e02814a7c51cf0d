"""A live Lorry for the Hugging Face clients: the registry with a log of the requests it got."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from registry.app import create_app
from registry.config import Settings
from tests.support.live import serving
from tests.support.processes import REPO_ROOT

ADAPTER_REPO = "acme/sql-gen"
MODEL_REPO = "acme/merged"


class RequestLog:
    """ASGI wrapper that remembers ``(method, path)`` of every HTTP request the app gets."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            with self._lock:
                self.requests.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def since(self, start: int) -> list[tuple[str, str]]:
        with self._lock:
            return self.requests[start:]


@dataclass
class LiveRegistry:
    url: str
    settings: Settings
    log: RequestLog
    http: httpx.Client
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Published versions by a label of the test data, e.g. ``adapter-v1``."""

    def flush_access_log(self) -> None:
        """Write the downloads recorded so far (the server batches them every second)."""
        self.log.app.state.access_log.flush()  # type: ignore[attr-defined]

    @property
    def presigns(self) -> bool:
        return (self.settings.resolved_blob_url() or "").startswith("s3://")


@contextmanager
def serve_logged(settings: Settings) -> Iterator[tuple[str, RequestLog]]:
    """The registry on ``settings`` live (lifespan on), with the log of its requests."""
    log = RequestLog(create_app(settings))
    with serving(settings, app=log, lifespan="on") as server:
        yield server.url, log


def client_env(registry: LiveRegistry, cache: Path) -> dict[str, str]:
    """Environment of a client subprocess that reads from ``registry``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")
    }
    env.update(
        {
            "HF_ENDPOINT": registry.url,
            "HF_HUB_CACHE": str(cache),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    return env
