"""A token limited to some namespaces lists only what it may read."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.support.rest import API, push_ok, with_extra


def test_a_namespace_limited_token_lists_only_its_namespaces(
    sqlite_client: TestClient,
    adapter_files: dict[str, bytes],
    token_factory: Callable[..., dict[str, str]],
) -> None:
    push_ok(sqlite_client, "acme/sql-gen", adapter_files)
    push_ok(sqlite_client, "acme_x/tone", with_extra(adapter_files, "notes.txt", b"x"))
    push_ok(sqlite_client, "secret/weights", with_extra(adapter_files, "notes.txt", b"s"))
    admin = token_factory(["admin"], principal="root")
    reader = token_factory(["read"], ["acme/*"], principal="acme-reader")

    everything = sqlite_client.get(f"{API}/repos", headers=admin).json()
    assert [item["id"] for item in everything["items"]] == [
        "acme/sql-gen",
        "acme_x/tone",
        "secret/weights",
    ]
    mine = sqlite_client.get(f"{API}/repos", headers=reader).json()
    assert [item["id"] for item in mine["items"]] == ["acme/sql-gen"]
    assert mine["total"] == 1

    events = sqlite_client.get(f"{API}/audit", headers=reader).json()["items"]
    assert events, "the reader sees the events of its own namespace"
    assert {event["repository"] for event in events} == {"acme/sql-gen"}
    all_events = sqlite_client.get(f"{API}/audit", headers=admin).json()["items"]
    assert {"secret/weights", "acme_x/tone"} <= {event["repository"] for event in all_events}

    refused = sqlite_client.get(f"{API}/repos/secret/weights/versions/1", headers=reader)
    assert refused.status_code == 403
    assert sqlite_client.get(f"{API}/jobs", headers=reader).json()["total"] == 0
