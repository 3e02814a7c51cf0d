"""A commit whose storage fails (a full disk, the S3 server gone mid-commit) answers 503
``storage_unavailable`` with a message that names no path of the server, and leaves no row."""

from __future__ import annotations

import errno
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry import db
from registry.app import create_app
from registry.config import Settings
from registry.storage.s3 import S3BlobStore
from tests.support.backends import make_settings
from tests.support.rest import API, row_counts, upload_files
from tests.support.s3 import S3Server

REPO = "acme/sql-gen"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB filesystem (tmpfs), so that it can be filled."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> Path:
    """Write a ballast file until the filesystem is full (to the last byte)."""
    ballast = directory / "ballast"
    with ballast.open("wb", buffering=0) as handle:
        for size in (65536, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return ballast


def _without_card(files: dict[str, bytes]) -> dict[str, bytes]:
    """The adapter without its README.md: the commit writes a generated model card."""
    return {path: data for path, data in files.items() if path != "README.md"}


def _assert_path_free(body: dict[str, Any], settings: Settings) -> None:
    assert body["code"] == "storage_unavailable", body
    assert str(settings.home) not in body["message"] and "/tmp" not in body["message"], body


@pytest.mark.parametrize("kind", ["sqlite+local", "postgres+s3"])
def test_a_commit_on_a_full_disk_is_a_503_that_leaves_no_row(
    tmp_path: Path,
    small_disk: Path,
    request: pytest.FixtureRequest,
    kind: str,
    adapter_files: dict[str, bytes],
) -> None:
    if kind == "sqlite+local":
        (tmp_path / "db").mkdir()
        settings = Settings(
            home=small_disk / "home",
            database_url=f"sqlite:///{tmp_path / 'db' / 'lorry.db'}",
            blob_url=None,
        )
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        settings = make_settings(
            "postgres+s3",
            small_disk / "home",
            database_url=request.getfixturevalue("fresh_postgres_url"),
            s3=s3,
            bucket=request.getfixturevalue("fresh_s3_bucket"),
        )
    db.upgrade(settings)
    with TestClient(create_app(settings)) as client:
        manifest = upload_files(client, _without_card(adapter_files))
        before = row_counts(client)
        ballast = _fill(small_disk)
        commit = client.post(f"{API}/repos/{REPO}/versions", json={"files": manifest})
        assert commit.status_code == 503, commit.text
        _assert_path_free(commit.json(), settings)
        assert row_counts(client) == before
        assert not list(settings.tmp_dir.iterdir()), "no scratch file is left behind"
        ballast.unlink()
        again = client.post(f"{API}/repos/{REPO}/versions", json={"files": manifest})
        assert again.status_code == 201, again.text
        assert "README.md" in {entry["path"] for entry in again.json()["files"]}


def _commit(client: TestClient, manifest: list[dict[str, Any]], responses: list[Any]) -> None:
    responses.append(client.post(f"{API}/repos/{REPO}/versions", json={"files": manifest}))


@pytest.mark.postgres
@pytest.mark.s3
@pytest.mark.slow
def test_the_s3_server_going_away_mid_commit_gives_201_or_503_and_never_a_half_version(
    postgres_s3_settings: Settings,
    s3_server: S3Server,
    adapter_files: dict[str, bytes],
) -> None:
    """The S3 server is stopped at several moments during commits: each answers 201 (it
    finished first) or 503 ``storage_unavailable``; a 503 adds no row, and the audit chain
    stays valid."""
    settings = postgres_s3_settings
    db.upgrade(settings)
    statuses = []
    with TestClient(create_app(settings)) as client:
        store = client.app.state.blob_store  # type: ignore[attr-defined]
        assert isinstance(store, S3BlobStore)
        for round_, delay in enumerate((0.0, 0.02, 0.05, 0.1, 0.2)):
            files = {**_without_card(adapter_files), "round.txt": str(round_).encode()}
            manifest = upload_files(client, files)
            before = row_counts(client)
            responses: list[Any] = []
            worker = threading.Thread(target=_commit, args=(client, manifest, responses))
            worker.start()
            time.sleep(delay)
            s3_server.stop()
            worker.join(timeout=120)
            s3_server.start()
            store.ensure_bucket()  # moto keeps data in memory: it comes back empty
            (response,) = responses
            statuses.append(response.status_code)
            assert response.status_code in (201, 503), response.text
            if response.status_code == 503:
                _assert_path_free(response.json(), settings)
                assert row_counts(client) == before
            assert not list(settings.tmp_dir.iterdir()), "no scratch file is left behind"
        assert 503 in statuses, f"S3 never went away mid-commit: {statuses}"
        assert client.get(f"{API}/audit/verify").json()["ok"] is True
