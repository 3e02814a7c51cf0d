"""Faults with the real server processes: S3 stopped mid-push, PostgreSQL restarted under load."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry import db
from registry.app import create_app
from registry.config import Settings
from registry.storage.s3 import S3BlobStore
from tests.registry.conftest import API, push_ok, row_counts, sha256_of, with_extra
from tests.servers import RestartablePostgresCluster, S3Server, make_settings

REPO = "acme/sql-lora"


@pytest.mark.postgres
@pytest.mark.s3
@pytest.mark.slow
def test_s3_stopped_mid_push_gives_503_leaves_nothing_and_the_push_succeeds_later(
    tmp_path: Path,
    fresh_postgres_url: str,
    s3_server: S3Server,
    fresh_s3_bucket: str,
    adapter_files: dict[str, bytes],
) -> None:
    settings = make_settings(
        "postgres+s3",
        tmp_path / "home",
        database_url=fresh_postgres_url,
        s3=s3_server,
        bucket=fresh_s3_bucket,
    )
    db.upgrade(settings)
    with TestClient(create_app(settings)) as client:
        items = list(adapter_files.items())
        manifest = []
        first_path, first_data = items[0]
        uploaded = client.put(f"{API}/blobs/sha256/{sha256_of(first_data)}", content=first_data)
        assert uploaded.status_code == 201
        manifest.append(
            {"path": first_path, "sha256": sha256_of(first_data), "size": len(first_data)}
        )

        s3_server.stop()
        try:
            for path, data in items[1:]:
                sha = sha256_of(data)
                response = client.put(f"{API}/blobs/sha256/{sha}", content=data)
                assert response.status_code == 503, response.text
                assert response.json()["code"] == "storage_unavailable"
                assert "S3" in response.json()["message"]
                manifest.append({"path": path, "sha256": sha, "size": len(data)})
            commit = client.post(f"{API}/repos/{REPO}/versions", json={"files": manifest})
            assert commit.status_code == 503, commit.text
            assert commit.json()["code"] == "storage_unavailable"
            assert client.get("/readyz").status_code == 503
        finally:
            s3_server.start()
        counts = row_counts(client)
        assert counts["versions"] == counts["repositories"] == counts["audit_events"] == 0

        store = client.app.state.blob_store  # type: ignore[attr-defined]
        assert isinstance(store, S3BlobStore)
        store.ensure_bucket()  # moto keeps data in memory: the restarted server is empty
        assert client.get("/readyz").status_code == 200
        version = push_ok(client, REPO, adapter_files)
        assert version["version"] == 1
        assert client.get(f"{API}/audit/verify").json()["ok"] is True


@pytest.mark.postgres
@pytest.mark.slow
def test_the_service_recovers_from_a_postgres_restart_under_load_without_its_own(
    tmp_path: Path,
    restartable_postgres: RestartablePostgresCluster,
    adapter_files: dict[str, bytes],
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=restartable_postgres.url)
    db.upgrade(settings)
    statuses: list[tuple[float, str, int]] = []
    bodies: list[str] = []
    stop = threading.Event()

    with TestClient(create_app(settings)) as client:
        push_ok(client, REPO, adapter_files)
        push_ok(client, REPO, with_extra(adapter_files, "notes.txt", b"v2"))

        def load(kind: str) -> None:
            round_ = 0
            while not stop.is_set():
                round_ += 1
                if kind == "read":
                    response = client.get(f"{API}/repos/{REPO}")
                else:
                    response = client.put(
                        f"{API}/repos/{REPO}/aliases/staging", json={"version": 1 + round_ % 2}
                    )
                statuses.append((time.monotonic(), kind, response.status_code))
                if response.status_code >= 500:
                    bodies.append(response.text)
                time.sleep(0.02)

        workers = [threading.Thread(target=load, args=(kind,)) for kind in ("read", "write")]
        for worker in workers:
            worker.start()
        time.sleep(0.5)
        restartable_postgres.halt()
        time.sleep(1.0)
        restartable_postgres.resume()
        resumed = time.monotonic()
        time.sleep(2.0)
        stop.set()
        for worker in workers:
            worker.join(timeout=30)

        codes = {code for _, _, code in statuses}
        assert codes <= {200, 503}, (codes, bodies[:3])
        assert 503 in codes, "the outage was seen"
        assert all("database" in body for body in bodies)
        late = [code for at, _, code in statuses if at > resumed + 1.0]
        assert late and set(late) == {200}, statuses[-10:]
        assert client.get("/readyz").status_code == 200
        assert client.get(f"{API}/audit/verify").json()["ok"] is True
