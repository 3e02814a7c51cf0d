"""The real app against real stores, for either backend pair."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from registry import db
from registry.app import create_app
from registry.config import Settings
from registry.tables import metadata

API = "/api/v1"


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    """Settings of a migrated database and an empty blob store, for each backend pair."""
    db.upgrade(backend_settings)
    return backend_settings


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Settings of a migrated embedded registry (SQLite + disk), for backend-neutral rules."""
    settings = Settings(home=tmp_path / "home", database_url=None, blob_url=None)
    db.upgrade(settings)
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def sqlite_client(sqlite_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_settings)) as test_client:
        yield test_client


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


ACCESS_LOG_TABLES = frozenset({"access_log", "download_counts"})


def row_counts(client: TestClient) -> dict[str, int]:
    """Rows in every table of the schema but the access log's, which the server writes in
    the background (a download's record may land at any time: it is not a change)."""
    with engine_of(client).connect() as connection:
        return {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
            if table.name not in ACCESS_LOG_TABLES
        }


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(client: TestClient | httpx.Client, data: bytes) -> dict[str, Any]:
    sha = sha256_of(data)
    response = client.put(f"{API}/blobs/sha256/{sha}", content=data)
    assert response.status_code in (200, 201), response.text
    return {"sha256": sha, "size": len(data)}


def directory_files(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def upload_files(
    client: TestClient | httpx.Client, files: dict[str, bytes]
) -> list[dict[str, Any]]:
    return [{"path": path, **upload(client, data)} for path, data in files.items()]


def push(
    client: TestClient | httpx.Client,
    repository: str,
    files: dict[str, bytes],
    **body: Any,
) -> Any:
    """Upload every file, then commit them as a version; returns the commit's response
    (an ``httpx.Response``, or the test client's own response type)."""
    manifest = upload_files(client, files)
    return client.post(f"{API}/repos/{repository}/versions", json={"files": manifest, **body})


def push_ok(
    client: TestClient | httpx.Client, repository: str, files: dict[str, bytes], **body: Any
) -> dict[str, Any]:
    response = push(client, repository, files, **body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture(scope="session")
def adapter_files(lora_adapter_dir: Path) -> dict[str, bytes]:
    """The files of the real PEFT adapter, by relative path."""
    return directory_files(lora_adapter_dir)


def with_extra(files: dict[str, bytes], name: str, data: bytes) -> dict[str, bytes]:
    """The adapter with one more small file: a distinct version of the same adapter."""
    return {**files, name: data}
