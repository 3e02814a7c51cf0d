"""Settings and apps for either backend pair (a pytest plugin, registered in tests/conftest.py).

Fixtures:

- ``postgres_s3_settings`` (function): ``Settings`` of a fresh PostgreSQL database and a fresh
  bucket on the S3 server, not migrated.
- ``backend_settings`` (function, parametrized ``sqlite-local`` / ``postgres-s3``):
  ``Settings`` for either backend pair, not migrated.
- ``settings`` / ``client``: the same, migrated, and the real app on it (both pairs).
- ``sqlite_settings`` / ``sqlite_client``: the embedded pair only, for backend-neutral rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry import db
from registry.app import create_app
from registry.config import Settings
from tests.support.s3 import S3Server

BACKEND_KINDS = ("sqlite+local", "postgres+s3")
TEST_JOB_HEARTBEAT_S = 0.5
"""Jobs of the app fixtures beat every half second, so that tests see them progress quickly."""


def make_settings(
    kind: str,
    home: Path,
    *,
    database_url: str | None = None,
    s3: S3Server | None = None,
    bucket: str | None = None,
    **overrides: Any,
) -> Settings:
    """``Settings`` for one backend pair, all data under ``home``.

    ``"sqlite+local"``: SQLite file and blob directory under ``home``.
    ``"postgres+s3"``: ``database_url`` plus ``s3://<bucket>`` on ``s3``; ``home``
    still holds the upload spool (``tmp_dir``). Explicit values win over any
    ``LORRY_*`` variables of the environment.
    """
    if kind == "sqlite+local":
        values: dict[str, Any] = {"home": home, "database_url": None, "blob_url": None}
    elif kind == "postgres+s3":
        if database_url is None or s3 is None or bucket is None:
            raise ValueError("postgres+s3 settings need database_url, s3 and bucket")
        values = {
            "home": home,
            "database_url": database_url,
            "blob_url": f"s3://{bucket}",
            "s3_endpoint": s3.endpoint,
            "s3_access_key": s3.access_key,
            "s3_secret_key": s3.secret_key,
            "s3_region": s3.region,
            "s3_secure": False,
        }
    else:
        raise ValueError(f"unknown backend kind {kind!r}; use one of {BACKEND_KINDS}")
    values.update(overrides)
    home.mkdir(parents=True, exist_ok=True)
    return Settings(**values)


@pytest.fixture
def postgres_s3_settings(
    tmp_path: Path, fresh_postgres_url: str, s3_server: S3Server, fresh_s3_bucket: str
) -> Settings:
    """``Settings`` of a new database on the session's PostgreSQL and a new bucket on its S3
    server (home: ``tmp_path / "home"``); not migrated."""
    return make_settings(
        "postgres+s3",
        tmp_path / "home",
        database_url=fresh_postgres_url,
        s3=s3_server,
        bucket=fresh_s3_bucket,
    )


@pytest.fixture(
    params=[
        pytest.param("sqlite+local", id="sqlite-local"),
        pytest.param("postgres+s3", id="postgres-s3", marks=[pytest.mark.postgres, pytest.mark.s3]),
    ]
)
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """``Settings`` for each backend pair in turn: SQLite + disk, PostgreSQL + S3 (moto)."""
    kind: str = request.param
    if kind == "sqlite+local":
        return make_settings(kind, tmp_path / "home")
    settings: Settings = request.getfixturevalue("postgres_s3_settings")
    return settings


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    """Settings of a migrated database and an empty blob store, for each backend pair."""
    backend_settings.job_heartbeat_s = TEST_JOB_HEARTBEAT_S
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
