"""Tokens: open until the first token, then bearer tokens with scopes and namespaces."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import text, update
from sqlmodel import Session, select
from typer.testing import CliRunner

from registry.app import create_app
from registry.config import Settings
from registry.db import create_engine_for
from registry.errors import InsecureConfiguration
from registry.tables import ApiToken
from tests.support.files import sha256_of
from tests.support.live import LiveServer
from tests.support.rest import API, engine_of, push_ok
from tests.support.tokens import bearer, make_token

REPO = "acme/sql-lora"


def test_without_tokens_everything_is_allowed_and_the_actor_is_local(
    sqlite_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(sqlite_client, REPO, adapter_files)
    events = sqlite_client.get(f"{API}/audit").json()["items"]
    assert {event["actor"] for event in events} == {"local"}


def test_after_the_first_token_writes_need_one_and_reads_stay_anonymous(
    sqlite_client: TestClient,
    adapter_files: dict[str, bytes],
    token_factory: Callable[..., dict[str, str]],
) -> None:
    push_ok(sqlite_client, REPO, adapter_files)
    writer = token_factory(["write"], ["acme/*"], principal="ci-bot")

    assert sqlite_client.get(f"{API}/repos/{REPO}").status_code == 200
    refused = sqlite_client.put(f"{API}/repos/{REPO}/aliases/staging", json={"version": 1})
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthorized"
    assert "LORRY_TOKEN" in refused.json()["message"]

    moved = sqlite_client.put(
        f"{API}/repos/{REPO}/aliases/staging", json={"version": 1}, headers=writer
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["updated_by"] == "ci-bot"
    newest = sqlite_client.get(f"{API}/audit", params={"limit": 1}).json()["items"][0]
    assert (newest["action"], newest["actor"]) == ("alias.set", "ci-bot")


def test_a_namespace_limited_token_is_refused_elsewhere_with_403(
    sqlite_client: TestClient,
    adapter_files: dict[str, bytes],
    token_factory: Callable[..., dict[str, str]],
) -> None:
    writer = token_factory(["write"], ["acme/*"])
    response = push_ok_or(sqlite_client, "other/lora", adapter_files, writer)
    assert response.status_code == 403
    assert "namespace 'other'" in response.json()["message"]
    assert push_ok_or(sqlite_client, REPO, adapter_files, writer).status_code == 201


def push_ok_or(
    client: TestClient, repository: str, files: dict[str, bytes], headers: dict[str, str]
) -> Any:
    manifest = []
    for path, data in files.items():
        sha = sha256_of(data)
        uploaded = client.put(f"{API}/blobs/sha256/{sha}", content=data, headers=headers)
        assert uploaded.status_code in (200, 201), uploaded.text
        manifest.append({"path": path, "sha256": sha, "size": len(data)})
    return client.post(
        f"{API}/repos/{repository}/versions", json={"files": manifest}, headers=headers
    )


def test_anonymous_reads_can_be_switched_off(tmp_path: Path) -> None:
    from registry import db

    settings = Settings(home=tmp_path / "home", anonymous_read=False)
    db.upgrade(settings)
    with TestClient(create_app(settings)) as client:
        reader = bearer(make_token(client, ["read"]))
        assert client.get(f"{API}/repos").status_code == 401
        assert client.get("/api/models/acme/x").status_code == 401
        assert client.get(f"{API}/repos", headers=reader).status_code == 200
        assert client.get("/healthz").status_code == 200


def test_tokens_are_stored_only_as_hashes(
    sqlite_client: TestClient, token_factory: Callable[..., dict[str, str]]
) -> None:
    headers = token_factory(["read"])
    secret = headers["Authorization"].removeprefix("Bearer ")
    with engine_of(sqlite_client).connect() as connection:
        rows = connection.execute(text("SELECT * FROM api_tokens")).all()
    assert len(rows) == 1
    assert all(secret not in str(value) for value in rows[0])
    listed = sqlite_client.get(f"{API}/tokens", headers=token_factory(["admin"])).json()
    assert all("token" not in item for item in listed["items"])


def test_revoked_expired_and_forged_tokens_get_401(
    sqlite_client: TestClient, token_factory: Callable[..., dict[str, str]]
) -> None:
    admin = token_factory(["admin"], principal="root")
    created = sqlite_client.post(
        f"{API}/tokens", json={"principal": "alice", "scopes": ["write"]}, headers=admin
    )
    assert created.status_code == 201, created.text
    alice = bearer(created.json()["token"])
    url = f"{API}/repos/acme/x/aliases/a"
    assert sqlite_client.put(url, json={"version": 1}, headers=alice).status_code == 404

    forged = bearer(created.json()["token"][:-2] + "xx")
    assert sqlite_client.put(url, json={"version": 1}, headers=forged).status_code == 401

    revoked = sqlite_client.delete(f"{API}/tokens/{created.json()['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    response = sqlite_client.put(url, json={"version": 1}, headers=alice)
    assert response.status_code == 401
    assert "revoked" in response.json()["message"]

    expiring = token_factory(["write"], principal="temp")
    with Session(engine_of(sqlite_client)) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.principal == "temp")  # type: ignore[arg-type]
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        session.commit()
    response = sqlite_client.put(url, json={"version": 1}, headers=expiring)
    assert response.status_code == 401
    assert "expired" in response.json()["message"]

    actions = [e["action"] for e in sqlite_client.get(f"{API}/audit").json()["items"]]
    assert "token.create" in actions and "token.revoke" in actions


def test_a_hugging_face_token_reads_anonymously_and_lorry_tokens_work_on_the_hub_api(
    sqlite_client: TestClient,
    adapter_files: dict[str, bytes],
    token_factory: Callable[..., dict[str, str]],
) -> None:
    push_ok(sqlite_client, REPO, adapter_files)
    reader = token_factory(["read"], ["acme/*"])
    assert sqlite_client.get(f"/api/models/{REPO}", headers=reader).status_code == 200
    hf = bearer("hf_notalorrytoken")
    assert sqlite_client.get(f"/api/models/{REPO}", headers=hf).status_code == 200
    assert (
        sqlite_client.post(f"{API}/repos/{REPO}/versions", json={}, headers=hf).status_code == 401
    )


def test_a_server_on_a_public_address_refuses_to_start_without_an_admin_token(
    tmp_path: Path,
) -> None:
    from registry import db

    settings = Settings(home=tmp_path / "home", host="0.0.0.0")
    db.upgrade(settings)
    with pytest.raises(InsecureConfiguration, match="lorry token create --admin"):
        with TestClient(create_app(settings)):
            pass
    with TestClient(create_app(Settings(home=tmp_path / "home"))) as loopback:
        make_token(loopback, ["admin"])
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200


def test_cli_bootstraps_an_admin_token_locally_then_manages_tokens_over_rest(
    live_server: LiveServer,
    lorry_app: typer.Typer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = live_server.settings
    monkeypatch.setenv("LORRY_HOME", str(settings.home))
    monkeypatch.delenv("LORRY_DATABASE_URL", raising=False)
    monkeypatch.delenv("LORRY_TOKEN", raising=False)
    monkeypatch.setenv("LORRY_URL", live_server.url)
    runner = CliRunner()

    boot = runner.invoke(lorry_app, ["token", "create", "--admin", "--principal", "ops"])
    assert boot.exit_code == 0, boot.output
    admin_token = boot.output.strip().splitlines()[-1]
    assert admin_token.startswith("lorry_")

    monkeypatch.setenv("LORRY_TOKEN", admin_token)
    made = runner.invoke(
        lorry_app,
        ["token", "create", "--principal", "ci", "--scope", "write", "--namespace", "acme/*"],
    )
    assert made.exit_code == 0, made.output
    listed = runner.invoke(lorry_app, ["token", "ls"])
    assert listed.exit_code == 0, listed.output
    assert "ops" in listed.output and "ci" in listed.output and "acme/*" in listed.output

    ci_id = next(line.split()[0] for line in listed.output.splitlines() if " ci " in line)
    revoked = runner.invoke(lorry_app, ["token", "revoke", ci_id])
    assert revoked.exit_code == 0, revoked.output

    monkeypatch.delenv("LORRY_TOKEN")
    refused = runner.invoke(lorry_app, ["token", "ls"])
    assert refused.exit_code == 1
    assert "unauthorized" in refused.output

    engine = create_engine_for(settings)
    try:
        with Session(engine) as session:
            principals = session.exec(select(ApiToken.principal)).all()
    finally:
        engine.dispose()
    assert sorted(principals) == ["ci", "ops"]
