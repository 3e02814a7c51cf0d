"""The registry's REST API as the tests drive it: push files, read versions, wait for jobs,
count rows. Each helper takes the app's ``TestClient`` or an ``httpx.Client`` of a live server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from registry.config import Settings
from registry.db import create_engine_for
from registry.tables import metadata
from tests.support.files import sha256_of

API = "/api/v1"
FINISHED = ("succeeded", "failed", "cancelled")
ACCESS_LOG_TABLES = frozenset({"access_log", "download_counts"})
UPLOAD_TABLES = frozenset({"blob_uploads"})
"""Which namespace uploaded which blob: written by an upload, before and whatever becomes
of the commit that follows (as the stored blob is), so not a commit's change."""

Http = TestClient | httpx.Client


def with_extra(files: dict[str, bytes], name: str, data: bytes) -> dict[str, bytes]:
    """The adapter with one more small file: a distinct version of the same adapter."""
    return {**files, name: data}


def upload(client: Http, data: bytes) -> dict[str, Any]:
    sha = sha256_of(data)
    response = client.put(f"{API}/blobs/sha256/{sha}", content=data)
    assert response.status_code in (200, 201), response.text
    return {"sha256": sha, "size": len(data)}


def upload_files(client: Http, files: dict[str, bytes]) -> list[dict[str, Any]]:
    return [{"path": path, **upload(client, data)} for path, data in files.items()]


def push(client: Http, repository: str, files: dict[str, bytes], **body: Any) -> Any:
    """Upload every file, then commit them as a version; returns the commit's response
    (an ``httpx.Response``, or the test client's own response type)."""
    manifest = upload_files(client, files)
    return client.post(f"{API}/repos/{repository}/versions", json={"files": manifest, **body})


def push_ok(client: Http, repository: str, files: dict[str, bytes], **body: Any) -> dict[str, Any]:
    """``push`` that must succeed (201); returns the new version."""
    response = push(client, repository, files, **body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def version_files(client: Http, repository: str, ref: str) -> dict[str, bytes]:
    """Every file of a version through the native API."""
    version = client.get(f"{API}/repos/{repository}/versions/{ref}").json()
    files = {}
    for entry in version["files"]:
        response = client.get(f"{API}/repos/{repository}/versions/{ref}/files/{entry['path']}")
        assert response.status_code == 200, response.text
        files[entry["path"]] = response.content
    return files


def wait_for_job(
    client: Http, job_id: str, *, timeout: float = 120.0, until: tuple[str, ...] = FINISHED
) -> dict[str, Any]:
    """The job once its state is one of ``until`` (by default: finished)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"{API}/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["state"] in until:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']}: {job['log']}"
        time.sleep(0.1)


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


@contextmanager
def database_engine(target: TestClient | Settings) -> Iterator[Engine]:
    """The app's engine (a test client), or a new one on the settings' database (disposed
    on leaving)."""
    if isinstance(target, TestClient):
        yield engine_of(target)
        return
    engine = create_engine_for(target)
    try:
        yield engine
    finally:
        engine.dispose()


def row_counts(target: TestClient | Settings) -> dict[str, int]:
    """Rows in every table of the schema but the access log's, which the server writes in
    the background (a download's record may land at any time: it is not a change), and
    the upload records (``UPLOAD_TABLES``)."""
    with database_engine(target) as engine, engine.connect() as connection:
        return {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
            if table.name not in ACCESS_LOG_TABLES | UPLOAD_TABLES
        }
