"""Protected aliases: a rule makes matching aliases need promote and a reason."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.support.rest import API, push, push_ok, row_counts, with_extra

REPO = "acme/sql-lora"


def _protect(
    client: TestClient, admin: dict[str, str], repository: str, alias: str, **extra: object
) -> dict[str, object]:
    response = client.post(
        f"{API}/policies", json={"repository": repository, "alias": alias, **extra}, headers=admin
    )
    assert response.status_code == 201, response.text
    rule: dict[str, object] = response.json()
    return rule


def test_moving_a_protected_alias_needs_promote_and_a_reason(
    sqlite_client: TestClient,
    adapter_files: dict[str, bytes],
    token_factory: Callable[..., dict[str, str]],
) -> None:
    push_ok(sqlite_client, REPO, adapter_files)
    push_ok(sqlite_client, REPO, with_extra(adapter_files, "notes.txt", b"v2"))
    admin = token_factory(["admin"], principal="root")
    writer = token_factory(["write"], ["acme/*"], principal="ci")
    promoter = token_factory(["promote"], ["acme/*"], principal="release-manager")
    rule = _protect(sqlite_client, admin, "acme/*", "production")
    url = f"{API}/repos/{REPO}/aliases/production"

    refused = sqlite_client.put(url, json={"version": 1, "reason": "ship"}, headers=writer)
    assert refused.status_code == 403
    message = refused.json()["message"]
    assert f"rule {rule['id']} (acme/* @ production)" in message
    assert "promote" in message

    no_reason = sqlite_client.put(url, json={"version": 1}, headers=promoter)
    assert no_reason.status_code == 403
    assert "reason" in no_reason.json()["message"]
    assert f"rule {rule['id']}" in no_reason.json()["message"]

    moved = sqlite_client.put(url, json={"version": 1, "reason": "CAB-42"}, headers=promoter)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["updated_by"], moved.json()["reason"]) == ("release-manager", "CAB-42")

    deleted = sqlite_client.delete(url, headers=writer, params={"reason": "oops"})
    assert deleted.status_code == 403
    assert sqlite_client.delete(url, headers=promoter).status_code == 403
    assert (
        sqlite_client.delete(url, headers=promoter, params={"reason": "rollback"}).status_code
        == 204
    )

    staging = sqlite_client.put(
        f"{API}/repos/{REPO}/aliases/staging", json={"version": 2}, headers=writer
    )
    assert staging.status_code == 200, "unprotected aliases move with write"


def test_push_with_a_protected_alias_is_refused_whole(
    sqlite_client: TestClient,
    adapter_files: dict[str, bytes],
    token_factory: Callable[..., dict[str, str]],
) -> None:
    admin = token_factory(["admin"], principal="root")
    writer = token_factory(["write"], principal="ci")
    _protect(sqlite_client, admin, REPO, "prod*", require_reason=False)
    before = row_counts(sqlite_client)

    sqlite_client.headers.update(writer)
    try:
        response = push(sqlite_client, REPO, adapter_files, alias="production", message="v1")
    finally:
        del sqlite_client.headers["Authorization"]
    assert response.status_code == 403
    assert "prod*" in response.json()["message"]
    after = row_counts(sqlite_client)
    assert after["versions"] == before["versions"] == 0
    assert after["repositories"] == 0

    sqlite_client.headers.update(admin)
    try:
        created = push(sqlite_client, REPO, adapter_files, alias="production")
    finally:
        del sqlite_client.headers["Authorization"]
    assert created.status_code == 201, "admin implies promote; this rule needs no reason"


def test_rules_are_listed_and_removed_by_admins_and_audited(
    sqlite_client: TestClient, token_factory: Callable[..., dict[str, str]]
) -> None:
    admin = token_factory(["admin"], principal="root")
    rule = _protect(sqlite_client, admin, "*", "production")
    duplicate = sqlite_client.post(
        f"{API}/policies", json={"repository": "*", "alias": "production"}, headers=admin
    )
    assert duplicate.status_code == 409
    listed = sqlite_client.get(f"{API}/policies").json()["items"]
    assert [item["id"] for item in listed] == [rule["id"]]
    assert sqlite_client.delete(f"{API}/policies/{rule['id']}", headers=admin).status_code == 204
    assert sqlite_client.delete(f"{API}/policies/{rule['id']}", headers=admin).status_code == 404
    actions = [e["action"] for e in sqlite_client.get(f"{API}/audit").json()["items"]]
    assert actions[:2] == ["policy.delete", "policy.set"]


def test_rules_apply_without_tokens_too(
    sqlite_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(sqlite_client, REPO, adapter_files)
    _protect(sqlite_client, {}, REPO, "production")
    url = f"{API}/repos/{REPO}/aliases/production"
    assert sqlite_client.put(url, json={"version": 1}).status_code == 403
    assert sqlite_client.put(url, json={"version": 1, "reason": "go"}).status_code == 200
