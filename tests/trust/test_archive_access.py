"""Archiving and deleting: who may, and what a token limited to one namespace learns of
another namespace's archived and deleted repositories (nothing)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.support.rest import API, push_ok

SECRET_REASON = "other-team secret reason"


def test_only_an_admin_of_the_namespace_deletes_and_promote_archives(
    sqlite_client: TestClient,
    token_factory: Callable[..., dict[str, str]],
    adapter_files: dict[str, bytes],
) -> None:
    sqlite_client.headers.update(token_factory(["admin"], principal="root"))
    push_ok(sqlite_client, "acme/sql-lora", adapter_files)
    writer = token_factory(["write"], ["acme/*"], principal="writer")
    promoter = token_factory(["promote"], ["acme/*"], principal="release")
    elsewhere = token_factory(["admin"], ["other/*"], principal="other-admin")
    acme_admin = token_factory(["admin"], ["acme/*"], principal="acme-admin")
    delete = f"{API}/repos/acme/sql-lora/versions/1"
    params = {"reason": "bad data"}

    for headers in (writer, promoter, elsewhere):
        refused = sqlite_client.delete(delete, params=params, headers=headers)
        assert refused.status_code == 403, refused.text
    archive = f"{API}/repos/acme/sql-lora/archive"
    assert sqlite_client.post(archive, json=params, headers=writer).status_code == 403
    archived = sqlite_client.post(archive, json=params, headers=promoter)
    assert archived.status_code == 200, archived.text
    assert archived.json()["archived"]["by"] == "release"

    deleted = sqlite_client.delete(delete, params=params, headers=acme_admin)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted_by"] == "acme-admin"


def test_a_namespace_limited_token_learns_nothing_of_other_archived_or_deleted_repositories(
    sqlite_client: TestClient,
    token_factory: Callable[..., dict[str, str]],
    adapter_files: dict[str, bytes],
) -> None:
    admin = token_factory(["admin"], principal="root")
    sqlite_client.headers.update(admin)
    for repo in ("acme/kept", "other/archived", "other/deleted"):
        push_ok(sqlite_client, repo, adapter_files)
    reason = {"reason": SECRET_REASON}
    archived = sqlite_client.post(f"{API}/repos/other/archived/archive", json=reason, headers=admin)
    assert archived.status_code == 200, archived.text
    deleted = sqlite_client.delete(f"{API}/repos/other/deleted", params=reason, headers=admin)
    assert deleted.status_code == 200, deleted.text
    reader = token_factory(["read"], ["acme/*"], principal="acme-reader")

    listed = sqlite_client.get(f"{API}/repos", params={"archived": "true"}, headers=reader)
    assert [item["id"] for item in listed.json()["items"]] == ["acme/kept"]
    for url in (
        f"{API}/repos/other/archived",
        f"{API}/repos/other/deleted",
        f"{API}/repos/other/deleted/versions/1",
        "/api/models/other/deleted",
    ):
        response = sqlite_client.get(url, headers=reader)
        assert response.status_code in (403, 404), (url, response.text)
        assert SECRET_REASON not in response.text and "root" not in response.text, url
    everything = sqlite_client.get(f"{API}/repos", params={"archived": "true"}, headers=admin)
    assert [item["id"] for item in everything.json()["items"]] == ["acme/kept", "other/archived"]
