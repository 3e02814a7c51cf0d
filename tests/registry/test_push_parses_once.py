"""A push reads and parses the adapter's safetensors header once: validation hands the parsed
header to the non-finite check instead of that check reading it again."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry.validation import adapter, nonfinite
from tests.support.rest import push_ok


def test_a_push_parses_the_safetensors_header_once(
    sqlite_client: TestClient, adapter_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []
    real = adapter.read_safetensors_header

    def counting(*args: Any, **kwargs: Any) -> Any:
        parsed.append(kwargs.get("name", ""))
        return real(*args, **kwargs)

    monkeypatch.setattr(adapter, "read_safetensors_header", counting)
    monkeypatch.setattr(nonfinite, "read_safetensors_header", counting)
    version = push_ok(sqlite_client, "acme/parsed-once", adapter_files)
    assert parsed == ["adapter_model.safetensors"]
    assert version["metadata"]["nonfinite_tensors"] == []
