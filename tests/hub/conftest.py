"""A live Lorry (uvicorn in a thread) for the Hugging Face clients, on either backend pair."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from registry import db
from registry.app import create_app
from registry.config import Settings

API = "/api/v1"
ADAPTER_REPO = "acme/sql-gen"
MODEL_REPO = "acme/merged"
STARTUP_TIMEOUT_S = 30.0


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
def _serve(settings: Settings) -> Iterator[tuple[str, RequestLog]]:
    log = RequestLog(create_app(settings))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(log, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the registry on {url} did not start")
        time.sleep(0.05)
    try:
        yield url, log
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def directory_files(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def publish(
    http: httpx.Client, repository: str, files: dict[str, bytes], **body: Any
) -> dict[str, Any]:
    """Upload the blobs, then commit them as the next version (the REST API's push)."""
    manifest = []
    for path, data in files.items():
        sha = sha256_of(data)
        response = http.put(f"{API}/blobs/sha256/{sha}", content=data)
        assert response.status_code in (200, 201), response.text
        manifest.append({"path": path, "sha256": sha, "size": len(data)})
    response = http.post(f"{API}/repos/{repository}/versions", json={"files": manifest, **body})
    assert response.status_code == 201, response.text
    version: dict[str, Any] = response.json()
    return version


def version_files(http: httpx.Client, repository: str, ref: str) -> dict[str, bytes]:
    """Every file of a version through the native API: what the Hub API must give back."""
    version = http.get(f"{API}/repos/{repository}/versions/{ref}").json()
    files = {}
    for entry in version["files"]:
        response = http.get(f"{API}/repos/{repository}/versions/{ref}/files/{entry['path']}")
        assert response.status_code == 200, response.text
        files[entry["path"]] = response.content
    return files


@pytest.fixture
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, offline mode off, no telemetry, no token."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return cache


@pytest.fixture
def live_registry(
    backend_settings: Settings, lora_adapter_dir: Path, tiny_llama_dir: Path
) -> Iterator[LiveRegistry]:
    """A live registry with ``acme/sql-gen`` (v1 = the adapter, alias production; v2 = the
    adapter with one more file) and ``acme/merged`` (v1 with a note, v2 = the tiny Llama)."""
    db.upgrade(backend_settings)
    adapter = directory_files(lora_adapter_dir)
    model = directory_files(tiny_llama_dir)
    with _serve(backend_settings) as (url, log), httpx.Client(base_url=url, timeout=60) as http:
        registry = LiveRegistry(url=url, settings=backend_settings, log=log, http=http)
        registry.versions["adapter-v1"] = publish(
            http, ADAPTER_REPO, adapter, alias="production", message="first"
        )
        registry.versions["adapter-v2"] = publish(
            http, ADAPTER_REPO, {**adapter, "notes/eval.txt": b"accuracy 0.91\n"}
        )
        registry.versions["model-v1"] = publish(
            http, MODEL_REPO, {**model, "NOTES.txt": b"draft\n"}, kind="model"
        )
        registry.versions["model-v2"] = publish(http, MODEL_REPO, model, kind="model")
        yield registry


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
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        }
    )
    return env


@pytest.fixture
def blank_registry(backend_settings: Settings) -> Iterator[LiveRegistry]:
    """A live registry with no repository, for the Hub write API."""
    db.upgrade(backend_settings)
    with _serve(backend_settings) as (url, log), httpx.Client(base_url=url, timeout=60) as http:
        yield LiveRegistry(url=url, settings=backend_settings, log=log, http=http)
