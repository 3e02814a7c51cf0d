"""Downloads go to the access log: written in batches, counted per version, scoped by token,
and never through the audit chain's write lock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from registry.app import create_app
from registry.config import Settings
from registry.services.principals import ADMIN, READ
from tests.support.rest import API, engine_of, push_ok, row_counts, with_extra
from tests.support.tokens import make_token

REPO = "acme/sql-lora"


@pytest.fixture
def batched_client(settings: Settings) -> Iterator[TestClient]:
    """A registry whose access log only writes when told to (``flush``) or at shutdown."""
    settings.access_log_flush_s = 60.0
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _flush(client: TestClient) -> int:
    written: int = client.app.state.access_log.flush()  # type: ignore[attr-defined]
    return written


def test_downloads_are_written_in_one_batch_and_counted_per_version(
    batched_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    client = batched_client
    push_ok(client, REPO, adapter_files)
    push_ok(client, REPO, with_extra(adapter_files, "notes.txt", b"v2"), alias="production")
    audit_before = row_counts(client)["audit_events"]

    native = f"{API}/repos/{REPO}/versions/1/files/adapter_config.json"
    for _ in range(3):
        assert client.get(native).status_code == 200
    assert client.head(native).status_code == 200  # no bytes: not a download
    etag = client.get(native).headers["etag"]
    assert client.get(native, headers={"If-None-Match": etag}).status_code == 304  # neither
    ranged = client.get(native, headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206
    hub = client.get(f"/{REPO}/resolve/production/notes.txt", follow_redirects=False)
    assert hub.status_code in (200, 302)

    # Nothing is written on the request's path: the records wait for the batch.
    assert client.get(f"{API}/access-log").json()["total"] == 0
    assert _flush(client) == 6
    assert _flush(client) == 0

    page = client.get(f"{API}/access-log", params={"repository": REPO}).json()
    assert page["total"] == 6
    newest = page["items"][0]
    assert (newest["version"], newest["path"], newest["via"]) == (2, "notes.txt", "hub")
    assert newest["revision"] == "production"
    assert newest["redirect"] is (hub.status_code == 302)
    assert {item["range"] for item in page["items"]} == {
        None,
        "bytes 0-9/" + str(len(adapter_files["adapter_config.json"])),
    }
    assert client.get(f"{API}/repos/{REPO}/versions/1").json()["downloads"] == 5
    assert client.get(f"{API}/repos/{REPO}/versions/2").json()["downloads"] == 1
    listed = client.get(f"{API}/repos/{REPO}/versions").json()["items"]
    assert {item["version"]: item["downloads"] for item in listed} == {1: 5, 2: 1}
    assert client.get(f"{API}/repos/{REPO}").json()["downloads"] == 6
    only_v2 = client.get(f"{API}/access-log", params={"repository": REPO, "version": 2}).json()
    assert [item["path"] for item in only_v2["items"]] == ["notes.txt"]

    # Downloads are reads: the audit chain got nothing, and is still valid.
    assert row_counts(client)["audit_events"] == audit_before
    assert client.get(f"{API}/audit/verify").json()["ok"] is True


def test_records_left_at_shutdown_are_written(
    settings: Settings, adapter_files: dict[str, bytes]
) -> None:
    settings.access_log_flush_s = 60.0
    with TestClient(create_app(settings)) as client:
        push_ok(client, REPO, adapter_files)
        for path in adapter_files:
            assert client.get(f"{API}/repos/{REPO}/versions/1/files/{path}").status_code == 200
    with TestClient(create_app(settings)) as client:
        assert client.get(f"{API}/repos/{REPO}/versions/1").json()["downloads"] == len(
            adapter_files
        )


def _hold_audit_lock(client: TestClient, held: threading.Event, release: threading.Event) -> None:
    """Take what every audit append needs (SQLite: the database's write lock; PostgreSQL:
    the chain head's row lock) and keep it until ``release``."""
    engine = engine_of(client)
    if engine.dialect.name == "sqlite":
        assert engine.url.database
        raw = sqlite3.connect(engine.url.database, isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")
            held.set()
            release.wait(60)
            raw.execute("ROLLBACK")
        finally:
            raw.close()
        return
    with engine.connect() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_chain_head (id, last_event_id, last_hash) "
                "VALUES (1, NULL, :genesis) ON CONFLICT (id) DO NOTHING"
            ),
            {"genesis": "0" * 64},
        )
        connection.execute(text("SELECT * FROM audit_chain_head WHERE id = 1 FOR UPDATE"))
        held.set()
        release.wait(60)
        connection.rollback()


def test_concurrent_downloads_finish_while_the_audit_write_lock_is_held(
    batched_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    client = batched_client
    push_ok(client, REPO, adapter_files, alias="production")
    audit_before = row_counts(client)["audit_events"]
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_audit_lock, args=(client, held, release))
    holder.start()
    try:
        assert held.wait(10)
        paths = [
            f"{API}/repos/{REPO}/versions/production/files/adapter_config.json",
            f"/{REPO}/resolve/production/adapter_config.json",
        ] * 10
        with ThreadPoolExecutor(max_workers=10) as pool:
            futures = [pool.submit(client.get, path, follow_redirects=False) for path in paths]
            # Before the access log, each download appended an audit event and so waited
            # for this lock (30 s of busy timeout on SQLite, indefinitely on PostgreSQL).
            statuses = [future.result(timeout=20).status_code for future in futures]
        assert set(statuses) <= {200, 302} and len(statuses) == 20
    finally:
        release.set()
        holder.join(timeout=30)
    assert _flush(client) == 20
    assert row_counts(client)["audit_events"] == audit_before
    assert client.get(f"{API}/repos/{REPO}").json()["downloads"] == 20


def test_the_access_log_shows_a_namespace_limited_token_only_its_namespaces(
    batched_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    client = batched_client
    lookalikes = ["acme/sql-lora", "ACME/sql-lora", "acme-x/sql-lora", "acm/sql-lora"]
    for index, repository in enumerate(lookalikes):
        push_ok(client, repository, with_extra(adapter_files, "id.txt", str(index).encode()))
    admin = make_token(client, [ADMIN], ["*"], "root")
    reader = make_token(client, [READ], ["acme/*"], "acme-reader")
    for repository in lookalikes:
        response = client.get(
            f"{API}/repos/{repository}/versions/1/files/id.txt",
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert response.status_code == 200
    _flush(client)

    everything = client.get(f"{API}/access-log", headers={"Authorization": f"Bearer {admin}"})
    assert {item["repository"] for item in everything.json()["items"]} == set(lookalikes)
    limited = client.get(f"{API}/access-log", headers={"Authorization": f"Bearer {reader}"})
    assert limited.status_code == 200
    assert {item["repository"] for item in limited.json()["items"]} == {"acme/sql-lora"}
    assert limited.json()["total"] == 1
    asked = client.get(
        f"{API}/access-log",
        params={"repository": "ACME/sql-lora"},
        headers={"Authorization": f"Bearer {reader}"},
    )
    assert asked.json() == {"items": [], "total": 0}


def test_a_revoked_token_is_refused_at_once_by_the_process_that_revoked_it(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    with TestClient(create_app(sqlite_settings)) as client:
        admin = make_token(client, [ADMIN], ["*"], "root")
        reader = make_token(client, [READ], ["*"], "reader")
        headers = {"Authorization": f"Bearer {reader}"}
        assert client.get(f"{API}/repos", headers=headers).status_code == 200  # now cached
        token_id = reader.split("_")[1]
        revoked = client.delete(
            f"{API}/tokens/{token_id}", headers={"Authorization": f"Bearer {admin}"}
        )
        assert revoked.status_code == 200, revoked.text
        refused = client.get(f"{API}/repos", headers=headers)
        assert refused.status_code == 401
        assert "revoked" in refused.json()["message"]
