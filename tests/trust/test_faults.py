"""Faults with the real server processes: S3 stopped mid-push, PostgreSQL restarted under load."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry import db
from registry.app import create_app
from registry.config import Settings
from registry.storage.s3 import S3BlobStore
from tests.support.files import sha256_of
from tests.support.outages import restart_under_load
from tests.support.postgres import RestartablePostgresCluster
from tests.support.rest import API, push_ok, row_counts, with_extra
from tests.support.s3 import S3Server

REPO = "acme/sql-lora"


@pytest.mark.postgres
@pytest.mark.s3
@pytest.mark.slow
def test_s3_stopped_mid_push_gives_503_leaves_nothing_and_the_push_succeeds_later(
    postgres_s3_settings: Settings,
    s3_server: S3Server,
    adapter_files: dict[str, bytes],
) -> None:
    settings = postgres_s3_settings
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
    with TestClient(create_app(settings)) as client:
        push_ok(client, REPO, adapter_files)
        push_ok(client, REPO, with_extra(adapter_files, "notes.txt", b"v2"))

        def call(kind: str, round_: int) -> tuple[int, str]:
            if kind == "read":
                response = client.get(f"{API}/repos/{REPO}")
            else:
                response = client.put(
                    f"{API}/repos/{REPO}/aliases/staging", json={"version": 1 + round_ % 2}
                )
            return response.status_code, response.text

        outage = restart_under_load(
            restartable_postgres,
            ["read", "write"],
            lambda: nullcontext(call),
            warm_up_s=0.5,
            down_s=1.0,
            recover_s=2.0,
            pause_s=0.02,
        )

        codes = outage.codes()
        assert codes <= {200, 503}, (codes, outage.bodies[:3])
        assert 503 in codes, "the outage was seen"
        assert all("database" in body for body in outage.bodies)
        late = [code for at, _, code in outage.statuses if at > outage.resumed + 1.0]
        assert late and set(late) == {200}, outage.statuses[-10:]
        assert client.get("/readyz").status_code == 200
        assert client.get(f"{API}/audit/verify").json()["ok"] is True
