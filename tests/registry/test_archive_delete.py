"""Deleting versions and repositories: an admin's act with a reason; tombstones answer reads,
numbers are never given again, aliases and lineage protect what they refer to, gc takes the
blobs no remaining version shares, and the audit chain still verifies."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.support.compositions import publish_skills, sql_formal_recipe, submit
from tests.support.files import sha256_of
from tests.support.rest import API, push_ok, row_counts, wait_for_job, with_extra

REPO = "acme/sql-lora"
NOTES = b"notes of the second version only"


def _delete(client: TestClient, path: str, reason: str | None = "trained on leaked data") -> Any:
    params = {} if reason is None else {"reason": reason}
    return client.delete(f"{API}/repos/{path}", params=params)


def _gc(client: TestClient) -> list[str]:
    response = client.post(f"{API}/gc", params={"grace_minutes": 0})
    assert response.status_code == 200, response.text
    deleted: list[str] = response.json()["deleted"]
    return deleted


def _verified(client: TestClient) -> dict[str, Any]:
    report: dict[str, Any] = client.get(f"{API}/audit/verify").json()
    assert report["ok"] is True, report
    return report


def test_a_deleted_version_answers_with_its_tombstone_and_its_number_is_never_reused(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, REPO, adapter_files)
    v2 = push_ok(client, REPO, with_extra(adapter_files, "notes.txt", NOTES))

    deleted = _delete(client, f"{REPO}/versions/2")
    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert body["version"] == 2 and body["reason"] == "trained on leaked data"
    assert body["versions"] == [{"version": 2, "digest": v2["digest"]}]

    for ref in ("2", v2["digest"], v2["commit"]):
        gone = client.get(f"{API}/repos/{REPO}/versions/{ref}")
        assert gone.status_code == 404, gone.text
        error = gone.json()
        assert error["code"] == "version_deleted"
        assert "was deleted on" in error["message"]
        assert "trained on leaked data" in error["message"]
        assert body["deleted_by"] in error["message"]
    hub = client.get(f"/api/models/{REPO}/revision/{v2['commit']}")
    assert hub.status_code == 404 and "trained on leaked data" in hub.text
    assert client.get(f"{API}/repos/{REPO}/versions/latest").json()["version"] == 1
    assert [v["version"] for v in client.get(f"{API}/repos/{REPO}/versions").json()["items"]] == [1]
    assert client.get(f"{API}/repos/{REPO}").json()["latest_version"] == 1

    again = push_ok(client, REPO, with_extra(adapter_files, "notes.txt", b"a third try"))
    assert again["version"] == 3, "a deleted version's number is never given again"
    events = client.get(f"{API}/audit", params={"action": "version.delete"}).json()["items"]
    assert [(e["target"], e["after"]["reason"]) for e in events] == [
        (f"{REPO}@2", "trained on leaked data")
    ]
    assert client.get(f"{API}/audit", params={"action": "version.publish"}).json()["total"] == 3
    _verified(client)


def test_deleting_needs_a_reason_and_a_version_number(
    sqlite_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    v1 = push_ok(sqlite_client, REPO, adapter_files)
    before = row_counts(sqlite_client)
    assert _delete(sqlite_client, f"{REPO}/versions/1", reason=None).status_code == 422
    blank = _delete(sqlite_client, f"{REPO}/versions/1", reason="   ")
    assert blank.status_code == 422 and "--reason" in blank.json()["message"]
    for ref in (v1["digest"], "latest"):
        by_ref = _delete(sqlite_client, f"{REPO}/versions/{ref}")
        assert by_ref.status_code == 422, by_ref.text
        assert "by its number" in by_ref.json()["message"]
    assert _delete(sqlite_client, f"{REPO}/versions/7").status_code == 404
    assert row_counts(sqlite_client) == before


def test_an_alias_protects_its_version_and_a_repository(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, REPO, adapter_files, alias="production")
    before = row_counts(client)
    for path in (f"{REPO}/versions/1", REPO):
        refused = _delete(client, path)
        assert refused.status_code == 409, refused.text
        error = refused.json()
        assert error["code"] == "deletion_blocked"
        assert "production" in error["message"]
        assert f"lorry alias rm {REPO} production" in error["message"]
    assert row_counts(client) == before
    removed = client.request(
        "DELETE", f"{API}/repos/{REPO}/aliases/production", json={"reason": "retiring"}
    )
    assert removed.status_code in (200, 204), removed.text
    assert _delete(client, f"{REPO}/versions/1").status_code == 200


def test_gc_collects_the_blobs_of_deleted_versions_and_keeps_shared_ones(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    v1 = push_ok(client, REPO, adapter_files)
    push_ok(client, REPO, with_extra(adapter_files, "notes.txt", NOTES))
    other = push_ok(client, "acme/copy", adapter_files)
    assert _gc(client) == []

    assert _delete(client, f"{REPO}/versions/2").status_code == 200
    assert _gc(client) == [sha256_of(NOTES)]
    assert client.head(f"{API}/blobs/sha256/{sha256_of(NOTES)}").status_code == 404
    for file in v1["files"]:
        assert client.head(f"{API}/blobs/sha256/{file['sha256']}").status_code == 200
        url = f"{API}/repos/{REPO}/versions/1/files/{file['path']}"
        assert client.get(url).status_code == 200

    whole = _delete(client, REPO, reason="project ended")
    assert whole.status_code == 200, whole.text
    assert [v["version"] for v in whole.json()["versions"]] == [1]
    assert _gc(client) == [], "acme/copy shares every file of the deleted repository"
    for file in other["files"]:
        url = f"{API}/repos/acme/copy/versions/1/files/{file['path']}"
        assert client.get(url).status_code == 200

    assert _delete(client, "acme/copy", reason="project ended").status_code == 200
    assert sorted(_gc(client)) == sorted({f["sha256"] for f in other["files"]})
    report = _verified(client)
    actions = [
        e["action"] for e in client.get(f"{API}/audit", params={"limit": 1000}).json()["items"]
    ]
    assert actions.count("version.publish") == 3, "deleting removes no audit event"
    assert actions.count("repository.delete") == 2 and actions.count("version.delete") == 1
    assert report["events"] == len(actions)


def test_a_deleted_repository_answers_with_its_tombstone_and_its_name_continues_numbering(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, REPO, adapter_files)
    push_ok(client, REPO, with_extra(adapter_files, "notes.txt", NOTES))
    assert _delete(client, REPO, reason="project ended").status_code == 200

    for url in (f"{API}/repos/{REPO}", f"{API}/repos/{REPO}/versions", f"/api/models/{REPO}"):
        gone = client.get(url)
        assert gone.status_code == 404, (url, gone.text)
        assert "was deleted on" in gone.text and "project ended" in gone.text
    assert client.get(f"{API}/repos/{REPO}").json()["code"] == "repository_deleted"
    assert client.get(f"{API}/repos", params={"archived": "true"}).json()["items"] == []

    reborn = push_ok(client, REPO, adapter_files)
    assert reborn["version"] == 3, "versions of a re-created repository number past the old"
    old = client.get(f"{API}/repos/{REPO}/versions/2")
    assert old.status_code == 404 and old.json()["code"] == "version_deleted"
    _verified(client)


def test_lineage_protects_the_versions_a_composition_was_made_from(
    client: TestClient, skill_adapters: dict[str, dict[str, bytes]]
) -> None:
    publish_skills(client, skill_adapters)
    job = submit(client, sql_formal_recipe(), "acme/sql-formal").json()
    done = wait_for_job(client, job["id"])
    assert done["state"] == "succeeded", done
    before = row_counts(client)

    for path in ("acme/formal-tone/versions/1", "acme/formal-tone"):
        refused = _delete(client, path)
        assert refused.status_code == 409, refused.text
        error = refused.json()
        assert error["code"] == "deletion_blocked"
        assert "acme/sql-formal@1" in error["message"]
        assert "lineage must stay answerable" in error["message"]
    assert row_counts(client) == before

    assert _delete(client, "acme/sql-formal/versions/1").status_code == 200
    assert _delete(client, "acme/formal-tone/versions/1").status_code == 200
    _verified(client)
