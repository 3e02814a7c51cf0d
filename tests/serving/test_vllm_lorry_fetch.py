"""The resolver plugin's fetching (``integrations/vllm-lorry``, no vLLM needed) against a live
Lorry: exact versions by number, alias and digest, pinned to their commit, checked."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from vllm_lorry.fetch import (
    AdapterRefused,
    RegistryUnavailable,
    Settings,
    check_base_model,
    fetch_adapter,
    parse_reference,
)

from registry import db
from registry.config import Settings as RegistrySettings
from tests.support.files import directory_files
from tests.support.live import LiveServer, start_live_server
from tests.support.processes import free_port
from tests.support.rest import push_ok

BASE = "acme/base"
ADAPTER = "acme/sql"


@pytest.fixture
def registry(
    monkeypatch: pytest.MonkeyPatch,
    backend_settings: RegistrySettings,
    tiny_llama_dir: Path,
    lora_adapter_dir: Path,
) -> Iterator[tuple[LiveServer, dict[str, dict[str, Any]]]]:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    db.upgrade(backend_settings)
    server = start_live_server(backend_settings)
    adapter = directory_files(lora_adapter_dir)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            versions = {
                "model": push_ok(http, BASE, directory_files(tiny_llama_dir), kind="model"),
                "v1": push_ok(http, ADAPTER, adapter, alias="production", base_model=BASE),
                "v2": push_ok(http, ADAPTER, {**adapter, "notes.txt": b"v2\n"}, base_model=BASE),
            }
            yield server, versions
    finally:
        server.stop()


def _settings(url: str, tmp_path: Path, **changes: Any) -> Settings:
    settings = Settings.from_env(
        {"LORRY_URL": f"{url}/", "LORRY_VLLM_CACHE": str(tmp_path / "cache")}
    )
    assert settings is not None
    return replace(settings, **changes)


def test_references_are_namespace_name_at_ref() -> None:
    assert parse_reference("acme/sql@production") == ("acme/sql", "production")
    assert parse_reference("acme/sql@3") == ("acme/sql", "3")
    digest = "sha256:" + "a" * 64
    assert parse_reference(f"acme/sql@{digest}") == ("acme/sql", digest)
    for name in ("sql", "acme/sql", "acme/sql@", "/abs/path@1", "a/b/c@1", "acme/sql@1@2"):
        assert parse_reference(name) is None, name
    assert Settings.from_env({}) is None
    settings = Settings.from_env({"LORRY_URL": "http://lorry:8765/", "LORRY_TOKEN": "t"})
    assert settings is not None and (settings.url, settings.token) == ("http://lorry:8765", "t")
    assert settings.cache_dir == Path("~/.cache/lorry/vllm").expanduser()


def test_fetch_gets_the_exact_version_each_reference_names(
    registry: tuple[LiveServer, dict[str, dict[str, Any]]],
    tmp_path: Path,
) -> None:
    server, versions = registry
    settings = _settings(server.url, tmp_path)
    v1, v2 = versions["v1"], versions["v2"]
    for ref, version in [("1", v1), ("production", v1), ("2", v2), ("latest", v2)]:
        fetched = fetch_adapter(settings, ADAPTER, ref)
        assert fetched is not None, ref
        assert (fetched.version, fetched.commit) == (version["version"], version["commit"]), ref
        assert fetched.digest == version["digest"]
        assert fetched.path.name == version["commit"]
        pulled = {
            p: hashlib.sha256(data).hexdigest() for p, data in directory_files(fetched.path).items()
        }
        assert pulled == {f["path"]: f["sha256"] for f in version["files"]}, ref
        assert BASE in fetched.base_models
        check_base_model(fetched, BASE, settings)
    by_digest = fetch_adapter(settings, ADAPTER, v2["digest"])
    assert by_digest is not None and by_digest.version == 2

    assert fetch_adapter(settings, ADAPTER, "9") is None
    assert fetch_adapter(settings, ADAPTER, "staging") is None
    assert fetch_adapter(settings, "acme/nothing", "1") is None


def test_fetch_refuses_what_must_not_be_served(
    registry: tuple[LiveServer, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    server, _versions = registry
    settings = _settings(server.url, tmp_path)
    with pytest.raises(AdapterRefused, match="model repository, not a LoRA adapter"):
        fetch_adapter(settings, BASE, "1")

    fetched = fetch_adapter(settings, ADAPTER, "1")
    assert fetched is not None
    with pytest.raises(AdapterRefused, match="acme/base.*serves 'acme/llama-3-8b'"):
        check_base_model(fetched, "acme/llama-3-8b", settings)
    # LORRY_BASE_MODEL names the served model in Lorry when vLLM serves it from a path.
    check_base_model(fetched, "/models/llama", replace(settings, base_model=BASE))

    # A cached file that no longer matches its digest is found out, not served.
    weights = fetched.path / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.resolve().write_bytes(bytes(data))
    with pytest.raises(AdapterRefused, match="adapter_model.safetensors.*has sha256"):
        fetch_adapter(settings, ADAPTER, "1")

    down = _settings(f"http://127.0.0.1:{free_port()}", tmp_path)
    with pytest.raises(RegistryUnavailable, match="failed"):
        fetch_adapter(down, ADAPTER, "1")
