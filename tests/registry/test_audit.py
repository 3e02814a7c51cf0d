"""The audit log: every mutation is an event; query by repository, action, actor and time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tests.support.rest import API, push_ok, with_extra


def test_every_mutation_appends_an_event_with_actor_and_request_id(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    response = client.post(
        f"{API}/repos/acme/a/versions",
        json={"files": []},
    )
    assert response.status_code == 422
    push_ok(client, "acme/a", adapter_files)
    moved = client.put(
        f"{API}/repos/acme/a/aliases/production",
        json={"version": 1, "reason": "go"},
        headers={"X-Request-ID": "release-42"},
    )
    assert moved.headers["x-request-id"] == "release-42"
    client.delete(f"{API}/repos/acme/a/aliases/production")

    events = client.get(f"{API}/audit").json()
    assert events["total"] == 4
    assert [e["action"] for e in events["items"]] == [
        "alias.delete",
        "alias.set",
        "version.publish",
        "repository.create",
    ]
    alias_set = events["items"][1]
    assert alias_set["actor"] == "local"
    assert alias_set["request_id"] == "release-42"
    assert alias_set["repository"] == "acme/a"
    assert alias_set["target"] == "acme/a@production"
    assert alias_set["before"] == {"version": None}
    assert alias_set["after"]["version"] == 1
    publish = events["items"][2]
    assert publish["after"]["version"] == 1
    assert publish["after"]["digest"].startswith("sha256:")


def test_audit_query_filters_by_repository_action_actor_and_time(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    push_ok(client, "acme/a", adapter_files)
    push_ok(client, "acme/b", adapter_files)
    push_ok(client, "acme/b", with_extra(adapter_files, "x.txt", b"x"), alias="production")
    end = datetime.now(UTC) + timedelta(seconds=1)

    def query(**params: str) -> list[dict]:
        response = client.get(f"{API}/audit", params=params)
        assert response.status_code == 200, response.text
        items: list[dict] = response.json()["items"]
        assert response.json()["total"] == len(items)
        return items

    assert {e["repository"] for e in query(repository="acme/b")} == {"acme/b"}
    assert len(query(repository="acme/b")) == 4
    assert len(query(action="version.publish")) == 3
    assert len(query(action="alias.set", repository="acme/b")) == 1
    assert len(query(actor="local")) == 6
    assert query(actor="someone-else") == []
    assert len(query(since=start.isoformat(), until=end.isoformat())) == 6
    assert query(since=end.isoformat()) == []
    assert query(until=start.isoformat()) == []
    naive_future = (end + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert query(since=naive_future) == []
    page = client.get(f"{API}/audit", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 6
    assert len(page["items"]) == 2


def test_audit_query_rejects_a_bad_time(client: TestClient) -> None:
    response = client.get(f"{API}/audit", params={"since": "yesterday"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert "since" in response.json()["message"]
