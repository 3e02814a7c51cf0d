"""`lorry gc`: lists, then deletes, blobs that no version references; never a referenced one."""

from __future__ import annotations

import httpx
import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.support.files import sha256_of
from tests.support.live import LiveServer
from tests.support.rest import API, push_ok, row_counts, upload, upload_files, with_extra

REPO = "acme/sql-lora"


def _gc(client: TestClient, *, delete: bool, grace: int | None = 0) -> dict[str, object]:
    params = {} if grace is None else {"grace_minutes": grace}
    response = client.request("POST" if delete else "GET", f"{API}/gc", params=params)
    assert response.status_code == 200, response.text
    report: dict[str, object] = response.json()
    return report


def test_gc_lists_then_deletes_only_unreferenced_blobs(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    version = push_ok(client, REPO, adapter_files)
    orphan = upload(client, b"an upload that no version references")

    dry = _gc(client, delete=False)
    assert dry["dry_run"] is True
    listed = dry["unreferenced"]
    assert isinstance(listed, list)
    assert [blob["sha256"] for blob in listed] == [orphan["sha256"]]
    assert dry["deleted"] == []
    assert client.head(f"{API}/blobs/sha256/{orphan['sha256']}").status_code == 200

    done = _gc(client, delete=True)
    assert done["deleted"] == [orphan["sha256"]]
    assert client.head(f"{API}/blobs/sha256/{orphan['sha256']}").status_code == 404
    for file in version["files"]:
        assert client.head(f"{API}/blobs/sha256/{file['sha256']}").status_code == 200
        url = f"{API}/repos/{REPO}/versions/1/files/{file['path']}"
        assert client.get(url).status_code == 200
    assert _gc(client, delete=False)["unreferenced"] == []
    events = client.get(f"{API}/audit", params={"action": "blob.delete"}).json()["items"]
    assert [event["after"]["digests"] for event in events] == [[orphan["sha256"]]]


def test_gc_keeps_the_blobs_of_a_push_in_progress(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, REPO, adapter_files)
    files = with_extra(adapter_files, "notes.txt", b"a push in progress")
    manifest = upload_files(client, files)

    kept = _gc(client, delete=True, grace=None)
    assert kept["deleted"] == [] and kept["unreferenced"] == []
    assert kept["kept_recent"] == 1, "notes.txt was uploaded within the grace period"
    committed = client.post(f"{API}/repos/{REPO}/versions", json={"files": manifest})
    assert committed.status_code == 201, committed.text
    assert _gc(client, delete=False)["unreferenced"] == []


def test_a_push_whose_upload_was_collected_fails_cleanly_and_succeeds_again(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, REPO, adapter_files)
    files = with_extra(adapter_files, "notes.txt", b"uploaded long ago")
    manifest = upload_files(client, files)
    assert _gc(client, delete=True)["deleted"] == [sha256_of(b"uploaded long ago")]
    before = row_counts(client)

    refused = client.post(f"{API}/repos/{REPO}/versions", json={"files": manifest})
    assert refused.status_code == 422
    assert refused.json()["code"] == "missing_blob"
    assert row_counts(client) == before
    assert push_ok(client, REPO, files)["version"] == 2


@pytest.mark.slow
def test_cli_gc_is_a_dry_run_unless_told_to_delete(
    live_server: LiveServer,
    lorry_app: typer.Typer,
    adapter_files: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with httpx.Client(base_url=live_server.url) as http:
        push_ok(http, REPO, adapter_files)
        orphan = upload(http, b"orphan for the cli")
    monkeypatch.setenv("LORRY_URL", live_server.url)
    runner = CliRunner()
    listed = runner.invoke(lorry_app, ["gc", "--grace-minutes", "0"])
    assert listed.exit_code == 0, listed.output
    assert f"unreferenced  sha256:{orphan['sha256']}" in listed.output
    assert "dry run" in listed.output
    fresh = runner.invoke(lorry_app, ["gc", "--delete"])
    assert "1 younger than 60 min kept" in " ".join(fresh.output.split())
    deleted = runner.invoke(lorry_app, ["gc", "--delete", "--grace-minutes", "0"])
    assert deleted.exit_code == 0, deleted.output
    assert f"deleted  sha256:{orphan['sha256']}" in deleted.output
    with httpx.Client(base_url=live_server.url) as http:
        assert http.head(f"{API}/blobs/sha256/{orphan['sha256']}").status_code == 404
