"""A live Lorry (uvicorn in a thread) for the Hugging Face clients, on either backend pair."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry import db
from registry.config import Settings
from tests.hub.live import ADAPTER_REPO, MODEL_REPO, LiveRegistry, serve_logged
from tests.support.files import directory_files
from tests.support.rest import push_ok


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
    with (
        serve_logged(backend_settings) as (url, log),
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        registry = LiveRegistry(url=url, settings=backend_settings, log=log, http=http)
        registry.versions["adapter-v1"] = push_ok(
            http, ADAPTER_REPO, adapter, alias="production", message="first"
        )
        registry.versions["adapter-v2"] = push_ok(
            http, ADAPTER_REPO, {**adapter, "notes/eval.txt": b"accuracy 0.91\n"}
        )
        registry.versions["model-v1"] = push_ok(
            http, MODEL_REPO, {**model, "NOTES.txt": b"draft\n"}, kind="model"
        )
        registry.versions["model-v2"] = push_ok(http, MODEL_REPO, model, kind="model")
        yield registry


@pytest.fixture
def blank_registry(backend_settings: Settings) -> Iterator[LiveRegistry]:
    """A live registry with no repository, for the Hub write API."""
    db.upgrade(backend_settings)
    with (
        serve_logged(backend_settings) as (url, log),
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        yield LiveRegistry(url=url, settings=backend_settings, log=log, http=http)
