"""Archiving and deleting reach webhooks: a team learns that a version it uses was deleted."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.serving.outbox import add_webhook
from tests.serving.receiver import Receiver, receiving
from tests.support.rest import API, push_ok, with_extra

EVENTS = ["repository.archive", "repository.unarchive", "version.delete", "repository.delete"]


def test_archive_and_delete_events_are_delivered(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, "acme/sql", adapter_files)
    push_ok(client, "acme/sql", with_extra(adapter_files, "notes.txt", b"two"))
    with receiving(Receiver()) as receiver:
        add_webhook(client, "acme", f"{receiver.url}/hook", events=EVENTS)
        reason = {"reason": "replaced"}
        assert client.post(f"{API}/repos/acme/sql/archive", json=reason).status_code == 200
        assert client.post(f"{API}/repos/acme/sql/unarchive", json={}).status_code == 200
        assert client.delete(f"{API}/repos/acme/sql/versions/2", params=reason).status_code == 200
        assert client.delete(f"{API}/repos/acme/sql", params=reason).status_code == 200
        requests = receiver.wait_for(4)
    received = sorted((r.json()["type"], r.json()["target"]) for r in requests)
    assert received == sorted(
        [
            ("repository.archive", "acme/sql"),
            ("repository.unarchive", "acme/sql"),
            ("version.delete", "acme/sql@2"),
            ("repository.delete", "acme/sql"),
        ]
    )
    deleted = next(r.json() for r in requests if r.json()["type"] == "version.delete")
    assert deleted["after"]["reason"] == "replaced"
