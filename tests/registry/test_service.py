"""The service as a whole: health, readiness, errors, request ids, migrations, `lorry db|serve`."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import psycopg
import pytest
import typer
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import inspect, make_url
from typer.testing import CliRunner

from cli.server_commands import register
from registry import db
from registry.app import create_app
from registry.config import Settings
from registry.errors import NotMigrated
from registry.tables import metadata
from tests.support.postgres import libpq_url


def test_healthz_and_readyz_answer_when_everything_works(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "blob_store": "ok"}}


def test_readyz_is_503_naming_the_check_when_the_blob_store_is_broken(
    sqlite_client: TestClient, sqlite_settings: Settings
) -> None:
    blobs = sqlite_settings.home / "blobs"
    shutil.rmtree(blobs, ignore_errors=True)
    blobs.write_bytes(b"not a directory")
    response = sqlite_client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["blob_store"].startswith("unavailable")


def test_request_id_is_echoed_or_generated(sqlite_client: TestClient) -> None:
    given = sqlite_client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = sqlite_client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    unsafe = sqlite_client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


def test_unknown_endpoints_and_methods_get_json_errors(sqlite_client: TestClient) -> None:
    missing = sqlite_client.get("/api/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    wrong = sqlite_client.delete("/api/v1/repos")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"


def test_openapi_documents_the_api(sqlite_client: TestClient) -> None:
    paths = sqlite_client.get("/openapi.json").json()["paths"]
    assert "/api/v1/repos/{namespace}/{name}/versions" in paths
    assert "/api/v1/blobs/sha256/{sha256}" in paths
    assert sqlite_client.get("/docs").status_code == 200


@pytest.mark.postgres
def test_lost_database_gives_503_and_readyz_names_it(
    fresh_postgres_url: str, postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(home=tmp_path, database_url=fresh_postgres_url)
    db.upgrade(settings)
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/repos").status_code == 200
        name = make_url(fresh_postgres_url).database
        with psycopg.connect(libpq_url(postgres_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        response = client.get("/api/v1/repos")
        assert response.status_code == 503
        assert response.json()["code"] == "database_unavailable"
        assert "LORRY_DATABASE_URL" in response.json()["message"]
        with caplog.at_level(logging.ERROR, logger="registry.services.health"):
            ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("unavailable")
        assert ready.json()["checks"]["blob_store"] == "ok"
        # The driver's message (naming the database) is logged, never shown to the caller.
        assert name is not None and name not in ready.text
        assert "psycopg" not in ready.text and "OperationalError" not in ready.text
        assert name in caplog.text


@pytest.mark.postgres
def test_server_refuses_an_unmigrated_postgresql_database(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path, database_url=fresh_postgres_url)
    with pytest.raises(NotMigrated, match="lorry db upgrade"):
        with TestClient(create_app(settings)):
            pass


def test_server_refuses_an_unmigrated_sqlite_database(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with pytest.raises(NotMigrated, match="lorry db upgrade"):
        with TestClient(create_app(settings)):
            pass


def test_migrations_build_the_schema_of_the_tables_and_downgrade_cleanly(
    backend_settings: Settings,
) -> None:
    db.upgrade(backend_settings)
    engine = db.create_engine_for(backend_settings)
    try:
        db.ensure_migrated(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
        config = db.alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        db.upgrade_engine(engine)
        db.ensure_migrated(engine)
    finally:
        engine.dispose()


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_db_commands_migrate_and_report_the_revision(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"LORRY_HOME": str(tmp_path), "LORRY_DATABASE_URL": ""}
    before = runner.invoke(_cli(), ["db", "current"], env=env)
    assert before.exit_code == 0
    assert "lorry db upgrade" in before.output
    upgraded = runner.invoke(_cli(), ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    after = runner.invoke(_cli(), ["db", "current"], env=env)
    assert f"{db.head_revision()} (newest)" in after.output


@pytest.mark.postgres
def test_serve_refuses_a_configured_unmigrated_database_and_names_the_command(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    env = {"LORRY_HOME": str(tmp_path), "LORRY_DATABASE_URL": fresh_postgres_url}
    result = CliRunner().invoke(_cli(), ["serve", "--port", "1"], env=env)
    assert result.exit_code == 1
    assert "lorry db upgrade" in result.output
