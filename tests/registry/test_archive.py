"""Archiving a repository: hidden from listings, read only, every pull still works."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support.rest import API, push, push_ok, row_counts, with_extra

OLD = "acme/old-sql"
LIVE = "acme/live-sql"


def _archive(client: TestClient, repo: str, reason: str | None = "superseded by live-sql") -> dict:
    response = client.post(f"{API}/repos/{repo}/archive", json={"reason": reason})
    assert response.status_code == 200, response.text
    archived: dict = response.json()
    return archived


def test_an_archived_repository_is_hidden_from_listings_and_still_pulls(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    v1 = push_ok(client, OLD, adapter_files, alias="production")
    push_ok(client, LIVE, adapter_files)

    archived = _archive(client, OLD)
    assert archived["archived"]["reason"] == "superseded by live-sql"
    assert archived["archived"]["by"]

    listed = client.get(f"{API}/repos").json()
    assert [item["id"] for item in listed["items"]] == [LIVE] and listed["total"] == 1
    everything = client.get(f"{API}/repos", params={"archived": "true"}).json()["items"]
    assert {item["id"]: bool(item["archived"]) for item in everything} == {
        LIVE: False,
        OLD: True,
    }
    hub_ids = [model["id"] for model in client.get("/api/models").json()]
    assert hub_ids == [LIVE]
    assert client.get(f"{API}/repos/{OLD}").json()["archived"]["reason"]

    config = adapter_files["adapter_config.json"]
    for ref in ("1", v1["digest"], "production", v1["commit"], "latest"):
        response = client.get(f"{API}/repos/{OLD}/versions/{ref}/files/adapter_config.json")
        assert response.status_code == 200, (ref, response.text)
        assert response.content == config
    hub = client.get(f"/{OLD}/resolve/main/adapter_config.json", follow_redirects=False)
    assert hub.status_code in (200, 302), hub.text  # S3: a redirect to the object
    assert hub.headers["x-repo-commit"] == v1["commit"]

    events = client.get(f"{API}/audit", params={"action": "repository.archive"}).json()["items"]
    assert [(e["target"], e["after"]["reason"]) for e in events] == [
        (OLD, "superseded by live-sql")
    ]


def test_an_archived_repository_refuses_every_change_until_unarchived(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, OLD, adapter_files, alias="production")
    _archive(client, OLD)
    before = row_counts(client)
    more = with_extra(adapter_files, "notes.txt", b"a second version")

    refusals = [
        push(client, OLD, more),
        client.put(f"{API}/repos/{OLD}/aliases/staging", json={"version": 1}),
        client.delete(f"{API}/repos/{OLD}/aliases/production"),
        client.post(f"{API}/repos/{OLD}/versions/1/exports", json={"format": "gguf"}),
    ]
    for response in refusals:
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["code"] == "repository_archived"
        assert f"`lorry repo unarchive {OLD}`" in body["message"]
        assert "superseded by live-sql" in body["message"]
    assert row_counts(client) == before

    again = client.post(f"{API}/repos/{OLD}/archive", json={"reason": "twice"})
    assert again.status_code == 409 and "already archived" in again.json()["message"]

    unarchived = client.post(f"{API}/repos/{OLD}/unarchive", json={"reason": "back in use"})
    assert unarchived.status_code == 200 and unarchived.json()["archived"] is None
    assert push_ok(client, OLD, more)["version"] == 2
    assert [item["id"] for item in client.get(f"{API}/repos").json()["items"]] == [OLD]
    events = client.get(f"{API}/audit", params={"action": "repository.unarchive"}).json()
    assert [e["after"]["reason"] for e in events["items"]] == ["back in use"]


def test_archiving_needs_a_reason(
    sqlite_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(sqlite_client, OLD, adapter_files)
    for body in ({}, {"reason": "  "}):
        response = sqlite_client.post(f"{API}/repos/{OLD}/archive", json=body)
        assert response.status_code == 422, response.text
        assert "--reason" in response.json()["message"]
    assert sqlite_client.get(f"{API}/repos/{OLD}").json()["archived"] is None
    missing = sqlite_client.post(f"{API}/repos/acme/nothing/archive", json={"reason": "x"})
    assert missing.status_code == 404
