"""The audit hash chain: verify names the first edited, removed or reordered event;
what an alias pointed to at a time."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session
from typer.testing import CliRunner

from registry import db
from registry.config import Settings
from registry.db import create_engine_for
from registry.services.audit_chain import GENESIS_HASH, event_hash, verify_chain
from tests.support.live import LiveServer
from tests.support.rest import API, engine_of, push_ok, with_extra

REPO = "acme/sql-lora"


def _history(client: TestClient, files: dict[str, bytes]) -> list[int]:
    """Four events at least: create, publish, publish, alias.set, alias.set; their ids."""
    push_ok(client, REPO, files)
    push_ok(client, REPO, with_extra(files, "notes.txt", b"v2"))
    for version in (1, 2):
        response = client.put(f"{API}/repos/{REPO}/aliases/production", json={"version": version})
        assert response.status_code == 200
    with engine_of(client).connect() as connection:
        return list(connection.execute(text("SELECT id FROM audit_events ORDER BY id")).scalars())


def _verify(client: TestClient) -> dict[str, Any]:
    response = client.get(f"{API}/audit/verify")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _execute(client: TestClient, *statements: str) -> None:
    with engine_of(client).begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def test_an_untouched_chain_verifies_and_links_every_event(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    ids = _history(client, adapter_files)
    report = _verify(client)
    assert report["ok"] is True and report["problem"] is None
    assert report["events"] == len(ids) >= 5
    assert report["head_event_id"] == ids[-1]
    with engine_of(client).connect() as connection:
        rows = connection.execute(
            text("SELECT prev_hash, hash FROM audit_events ORDER BY id")
        ).all()
    assert rows[0][0] == GENESIS_HASH
    assert all(rows[i][0] == rows[i - 1][1] for i in range(1, len(rows)))
    assert report["head_hash"] == rows[-1][1]


def test_an_edited_event_is_named(client: TestClient, adapter_files: dict[str, bytes]) -> None:
    ids = _history(client, adapter_files)
    _execute(client, f"UPDATE audit_events SET actor = 'mallory' WHERE id = {ids[2]}")
    problem = _verify(client)["problem"]
    assert (problem["kind"], problem["event_id"]) == ("edited", ids[2])
    assert f"event {ids[2]} was edited" in problem["message"]


def test_an_edited_and_rehashed_event_breaks_the_link_after_it(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    ids = _history(client, adapter_files)
    with engine_of(client).begin() as connection:
        row = connection.execute(
            text(
                "SELECT at, actor, action, repository, target, request_id, prev_hash "
                f"FROM audit_events WHERE id = {ids[1]}"
            )
        ).one()
    fields = dict(row._mapping) | {"actor": "mallory", "before": None}
    after = client.get(f"{API}/audit", params={"limit": 1000}).json()["items"]
    fields["after"] = next(item["after"] for item in after if item["id"] == ids[1])
    at = fields["at"]
    fields["at"] = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    forged = event_hash(fields, fields["prev_hash"])
    _execute(
        client,
        f"UPDATE audit_events SET actor = 'mallory', hash = '{forged}' WHERE id = {ids[1]}",
    )
    problem = _verify(client)["problem"]
    assert problem["event_id"] == ids[2]
    assert f"event {ids[1]}" in problem["message"]


def test_a_removed_event_is_named_by_the_event_after_it(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    ids = _history(client, adapter_files)
    _execute(client, f"DELETE FROM audit_events WHERE id = {ids[2]}")
    problem = _verify(client)["problem"]
    assert (problem["kind"], problem["event_id"]) == ("removed", ids[3])
    assert f"event {ids[1]} and event {ids[3]}" in problem["message"]


def test_removing_the_newest_events_is_caught_by_the_head(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    ids = _history(client, adapter_files)
    _execute(client, f"DELETE FROM audit_events WHERE id >= {ids[-2]}")
    problem = _verify(client)["problem"]
    assert (problem["kind"], problem["event_id"]) == ("removed", None)
    assert f"after event {ids[-3]}" in problem["message"]


def test_reordered_events_are_named(client: TestClient, adapter_files: dict[str, bytes]) -> None:
    ids = _history(client, adapter_files)
    a, b = ids[1], ids[2]
    _execute(
        client,
        f"UPDATE audit_events SET id = -1 WHERE id = {a}",
        f"UPDATE audit_events SET id = {a} WHERE id = {b}",
        f"UPDATE audit_events SET id = {b} WHERE id = -1",
    )
    problem = _verify(client)["problem"]
    assert (problem["kind"], problem["event_id"]) == ("reordered", a)


def test_an_event_inserted_behind_the_chains_back_is_named(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    ids = _history(client, adapter_files)
    with engine_of(client).connect() as connection:
        last_hash = connection.execute(
            text(f"SELECT hash FROM audit_events WHERE id = {ids[-1]}")
        ).scalar_one()
    forged = {
        "at": datetime(2030, 1, 1, tzinfo=UTC),
        "actor": "mallory",
        "action": "alias.set",
        "repository": REPO,
        "target": f"{REPO}@production",
    }
    digest = event_hash(forged, last_hash)
    _execute(
        client,
        "INSERT INTO audit_events (at, actor, action, repository, target, prev_hash, hash) "
        f"VALUES ('2030-01-01 00:00:00', 'mallory', 'alias.set', '{REPO}', "
        f"'{REPO}@production', '{last_hash}', '{digest}')",
    )
    problem = _verify(client)["problem"]
    assert problem["kind"] == "inserted"
    assert problem["event_id"] > ids[-1]


def test_concurrent_writers_keep_one_chain(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, REPO, adapter_files)
    push_ok(client, REPO, with_extra(adapter_files, "notes.txt", b"v2"))
    errors: list[str] = []

    def mover(alias: str) -> None:
        for round_ in range(6):
            response = client.put(
                f"{API}/repos/{REPO}/aliases/{alias}", json={"version": 1 + round_ % 2}
            )
            if response.status_code != 200:
                errors.append(response.text)

    threads = [threading.Thread(target=mover, args=(f"a{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    report = _verify(client)
    assert report["ok"], report
    assert report["events"] == 3 + 4 * 6


def test_what_an_alias_pointed_to_at_a_time(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    before_anything = datetime.now(UTC)
    time.sleep(0.01)
    push_ok(client, REPO, adapter_files, alias="production", message="first")
    v2 = push_ok(client, REPO, with_extra(adapter_files, "notes.txt", b"v2"))
    time.sleep(0.01)
    at_v1 = datetime.now(UTC)
    time.sleep(0.01)
    moved = client.put(
        f"{API}/repos/{REPO}/aliases/production", json={"version": 2, "reason": "better"}
    )
    assert moved.status_code == 200
    time.sleep(0.01)
    at_v2 = datetime.now(UTC)
    time.sleep(0.01)
    assert client.delete(f"{API}/repos/{REPO}/aliases/production").status_code == 204

    def at(moment: datetime) -> dict[str, Any]:
        response = client.get(
            f"{API}/repos/{REPO}/aliases/production/at", params={"time": moment.isoformat()}
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    assert at(before_anything)["version"] is None
    assert at(at_v1)["version"] == 1
    second = at(at_v2)
    assert (second["version"], second["digest"], second["reason"]) == (2, v2["digest"], "better")
    assert at(datetime.now(UTC))["version"] is None
    naive = client.get(
        f"{API}/repos/{REPO}/aliases/production/at",
        params={"time": at_v1.replace(tzinfo=None).isoformat()},
    )
    assert naive.json()["version"] == 1, "a time without offset is UTC"
    assert client.get(f"{API}/repos/{REPO}/aliases/production/at").status_code == 422


@pytest.mark.slow
def test_cli_verifies_the_chain_and_answers_alias_at(
    live_server: LiveServer,
    lorry_app: typer.Typer,
    adapter_files: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx

    with httpx.Client(base_url=live_server.url) as http:
        push_ok(http, REPO, adapter_files, alias="production")
    monkeypatch.setenv("LORRY_URL", live_server.url)
    monkeypatch.setenv("LORRY_HOME", str(live_server.settings.home))
    monkeypatch.delenv("LORRY_DATABASE_URL", raising=False)
    runner = CliRunner()

    ok = runner.invoke(lorry_app, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "audit chain intact" in ok.output
    listed = runner.invoke(lorry_app, ["audit", "--repo", REPO, "--json"])
    assert listed.exit_code == 0, listed.output
    assert '"version.publish"' in listed.output

    answer = runner.invoke(lorry_app, ["alias", "at", REPO, "production", "0m"])
    assert answer.exit_code == 0, answer.output
    assert "pointed to version 1" in answer.output

    engine = create_engine_for(live_server.settings)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET target = 'x' WHERE id = 1"))
    engine.dispose()
    cached = runner.invoke(lorry_app, ["audit", "verify"])
    assert cached.exit_code == 0 and "result of the walk at" in cached.output, cached.output
    broken = runner.invoke(lorry_app, ["audit", "verify", "--fresh"])
    assert broken.exit_code == 2, broken.output
    assert "edited" in broken.output and "event 1" in broken.output
    local = runner.invoke(lorry_app, ["audit", "verify", "--local", "--json"])
    assert local.exit_code == 2, local.output
    assert '"kind": "edited"' in local.output


def test_the_migration_chains_the_events_written_before_it(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    db.upgrade(settings, "0002_main_alias")
    engine = create_engine_for(settings)
    try:
        with engine.begin() as connection:
            for second in range(3):
                connection.execute(
                    text(
                        "INSERT INTO audit_events (at, actor, action, repository, target, after) "
                        f"VALUES ('2026-01-01 00:00:0{second}.5', 'local', 'alias.set', 'a/b', "
                        f"'a/b@x', '{{\"version\": {second}}}')"
                    )
                )
        db.upgrade_engine(engine)
        with Session(engine) as session:
            report = verify_chain(session)
    finally:
        engine.dispose()
    assert (report.ok, report.events, report.head_event_id) == (True, 3, 3)
