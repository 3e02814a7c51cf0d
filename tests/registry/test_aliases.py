"""Aliases: set, move, resolve, delete, and their history from the audit log."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.support.rest import API, push_ok, row_counts, with_extra

REPO = "acme/sql-gen"


@pytest.fixture
def three_versions(client: TestClient, adapter_files: dict[str, bytes]) -> TestClient:
    for number in (1, 2, 3):
        push_ok(client, REPO, with_extra(adapter_files, "notes.txt", b"%d" % number))
    return client


def _set(client: TestClient, alias: str, version: str | int, reason: str | None = None) -> dict:
    response = client.put(
        f"{API}/repos/{REPO}/aliases/{alias}", json={"version": version, "reason": reason}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_alias_set_move_delete_and_history(three_versions: TestClient) -> None:
    client = three_versions
    first = _set(client, "production", 1, "first release")
    assert first["version"] == 1
    assert first["reason"] == "first release"
    assert first["updated_by"] == "local"
    moved = _set(client, "production", "3", "better SQL")
    assert moved["version"] == 3
    assert client.get(f"{API}/repos/{REPO}/versions/production").json()["version"] == 3
    back = _set(client, "production", 2, "rollback: regressions")
    assert back["version"] == 2
    deleted = client.delete(f"{API}/repos/{REPO}/aliases/production", params={"reason": "retired"})
    assert deleted.status_code == 204
    assert client.get(f"{API}/repos/{REPO}/aliases/production").status_code == 404

    history = client.get(f"{API}/repos/{REPO}/aliases/production/history").json()["items"]
    moves = [(h["from_version"], h["to_version"], h["reason"]) for h in history]
    assert moves == [
        (None, 1, "first release"),
        (1, 3, "better SQL"),
        (3, 2, "rollback: regressions"),
        (2, None, "retired"),
    ]
    assert all(h["actor"] == "local" and h["request_id"] for h in history)
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)


def test_alias_can_point_at_another_alias_digest_or_latest(three_versions: TestClient) -> None:
    client = three_versions
    _set(client, "staging", "latest")
    promoted = _set(client, "production", "staging", "promote")
    assert promoted["version"] == 3
    digest = client.get(f"{API}/repos/{REPO}/versions/1").json()["digest"]
    assert _set(client, "prod-eu", digest)["version"] == 1
    listed = client.get(f"{API}/repos/{REPO}/aliases").json()["items"]
    assert {a["name"]: a["version"] for a in listed} == {
        "prod-eu": 1,
        "production": 3,
        "staging": 3,
    }
    repo = client.get(f"{API}/repos/{REPO}").json()
    assert repo["aliases"] == {"prod-eu": 1, "production": 3, "staging": 3}
    assert client.get(f"{API}/repos/{REPO}/versions/3").json()["aliases"] == [
        "production",
        "staging",
    ]


def test_setting_an_alias_to_where_it_points_records_nothing(three_versions: TestClient) -> None:
    client = three_versions
    _set(client, "production", 2)
    before = row_counts(client)["audit_events"]
    _set(client, "production", 2)
    assert row_counts(client)["audit_events"] == before


@pytest.mark.parametrize("alias", ["latest", "main", "Prod", "1st", "a" * 65, "a" * 40])
def test_invalid_or_reserved_alias_names_are_refused(
    three_versions: TestClient, alias: str
) -> None:
    response = three_versions.put(f"{API}/repos/{REPO}/aliases/{alias}", json={"version": 1})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"
    assert row_counts(three_versions)["aliases"] == 0


def test_alias_to_a_missing_version_or_repository_is_404(three_versions: TestClient) -> None:
    client = three_versions
    response = client.put(f"{API}/repos/{REPO}/aliases/production", json={"version": 9})
    assert response.status_code == 404
    assert response.json()["code"] == "version_not_found"
    response = client.put(f"{API}/repos/acme/none/aliases/production", json={"version": 1})
    assert response.json()["code"] == "repository_not_found"
    response = client.delete(f"{API}/repos/{REPO}/aliases/production")
    assert response.status_code == 404
    assert response.json()["code"] == "alias_not_found"
    assert row_counts(client)["aliases"] == 0


def test_push_with_alias_moves_it_in_the_same_commit(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, REPO, adapter_files, alias="production")
    push_ok(client, REPO, with_extra(adapter_files, "n.txt", b"2"), alias="production")
    history = client.get(f"{API}/repos/{REPO}/aliases/production/history").json()["items"]
    assert [(h["from_version"], h["to_version"]) for h in history] == [(None, 1), (1, 2)]
