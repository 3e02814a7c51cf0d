"""A version may name only blobs its namespace holds (``registry.services.blob_claims``).

An attacker with a write token for ``evil/*`` who knows the sha256 and size of a file of
``acme`` must not publish it into ``evil`` (and then download it) by naming it: not in a
REST push, not in a Hub commit, and the LFS batch API and blob upload answers must not
tell that the blob is stored. The same bytes actually uploaded for ``evil`` publish.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from registry.config import Settings
from registry.tables import BlobUpload
from tests.support.files import directory_files, sha256_of
from tests.support.live import serving
from tests.support.rest import API, database_engine, row_counts
from tests.support.tokens import bearer, make_token

ACME = "acme/sql-lora"
EVIL = "evil/copy"


def _tokens(client: TestClient) -> tuple[dict[str, str], dict[str, str]]:
    acme = bearer(make_token(client, ["write"], ["acme/*"], principal="acme-writer"))
    evil = bearer(make_token(client, ["write"], ["evil/*"], principal="evil-writer"))
    return acme, evil


def _manifest(files: dict[str, bytes]) -> list[dict[str, Any]]:
    return [
        {"path": path, "sha256": sha256_of(data), "size": len(data)} for path, data in files.items()
    ]


def _put(client: TestClient, data: bytes, headers: dict[str, str], namespace: str | None) -> int:
    params = {"namespace": namespace} if namespace is not None else {}
    response = client.put(
        f"{API}/blobs/sha256/{sha256_of(data)}", content=data, headers=headers, params=params
    )
    assert response.status_code < 300, response.text
    return response.status_code


def _publish(
    client: TestClient, repository: str, files: dict[str, bytes], headers: dict[str, str]
) -> Any:
    return client.post(
        f"{API}/repos/{repository}/versions", json={"files": _manifest(files)}, headers=headers
    )


def _uploads(settings: Settings) -> set[tuple[str, str]]:
    with database_engine(settings) as engine, engine.connect() as connection:
        rows = connection.execute(select(BlobUpload.namespace, BlobUpload.sha256)).all()
    return {(row[0], row[1]) for row in rows}


def test_a_push_cannot_name_a_blob_that_only_another_namespace_uploaded(
    client: TestClient, settings: Settings, adapter_files: dict[str, bytes]
) -> None:
    acme, evil = _tokens(client)
    for data in adapter_files.values():
        assert _put(client, data, acme, "acme") == 201
    assert _publish(client, ACME, adapter_files, acme).status_code == 201
    weights = adapter_files["adapter_model.safetensors"]
    digest = sha256_of(weights)

    # evil learns nothing: HEAD for its namespace and without one both say "not stored".
    for params in ({"namespace": "evil"}, {}):
        head = client.head(f"{API}/blobs/sha256/{digest}", headers=evil, params=params)
        assert head.status_code == 404
    assert client.head(
        f"{API}/blobs/sha256/{digest}", headers=acme, params={"namespace": "acme"}
    ).is_success

    counts, uploads = row_counts(client), _uploads(settings)
    refused = _publish(client, EVIL, adapter_files, evil)
    assert refused.status_code == 422
    body = refused.json()
    assert body["code"] == "blob_not_uploaded"
    assert "adapter_model.safetensors" in body["message"]
    assert "upload" in body["message"]
    assert row_counts(client) == counts
    assert _uploads(settings) == uploads
    assert client.get(f"{API}/repos/{EVIL}/versions/1", headers=evil).status_code == 404

    # A blob neither stored nor held is refused the same way: the answer tells nothing.
    made_up = {"adapter_model.safetensors": b"never uploaded by anyone"}
    unknown = _publish(client, EVIL, {**adapter_files, **made_up}, evil)
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "blob_not_uploaded"

    # Uploading bytes that are already stored answers as a fresh upload does (201), and
    # gives evil the blob: the same files now publish.
    for data in adapter_files.values():
        assert _put(client, data, evil, "evil") == 201
    assert ("evil", digest) in _uploads(settings)
    assert _publish(client, EVIL, adapter_files, evil).status_code == 201
    downloaded = client.get(
        f"{API}/repos/{EVIL}/versions/1/files/adapter_model.safetensors", headers=evil
    )
    assert downloaded.content == weights


def test_an_upload_without_a_namespace_counts_for_the_namespaces_the_token_names(
    client: TestClient, settings: Settings, adapter_files: dict[str, bytes]
) -> None:
    acme, evil = _tokens(client)
    for data in adapter_files.values():
        _put(client, data, acme, None)
    assert _publish(client, ACME, adapter_files, acme).status_code == 201
    assert {ns for ns, _ in _uploads(settings)} == {"acme"}
    assert _publish(client, EVIL, adapter_files, evil).json()["code"] == "blob_not_uploaded"
    refused = client.put(
        f"{API}/blobs/sha256/{sha256_of(b'x')}",
        content=b"x",
        headers=evil,
        params={"namespace": "acme"},
    )
    assert refused.status_code == 403
    assert ("acme", sha256_of(b"x")) not in _uploads(settings)


def _ndjson(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def _lfs_commit(files: dict[str, bytes]) -> bytes:
    operations = [
        {
            "key": "lfsFile",
            "value": {"path": path, "algo": "sha256", "oid": sha256_of(data), "size": len(data)},
        }
        for path, data in files.items()
    ]
    return _ndjson([{"key": "header", "value": {"summary": "copy"}}, *operations])


def _batch(client: TestClient, repository: str, data: bytes, headers: dict[str, str]) -> Any:
    response = client.post(
        f"/{repository}.git/info/lfs/objects/batch",
        json={
            "operation": "upload",
            "transfers": ["basic"],
            "hash_algo": "sha256",
            "objects": [{"oid": sha256_of(data), "size": len(data)}],
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    (answer,) = response.json()["objects"]
    return answer


def test_a_hub_commit_cannot_name_another_namespaces_blob_and_lfs_asks_for_the_bytes(
    client: TestClient, settings: Settings, adapter_files: dict[str, bytes]
) -> None:
    acme, evil = _tokens(client)
    for data in adapter_files.values():
        _put(client, data, acme, "acme")
    assert _publish(client, ACME, adapter_files, acme).status_code == 201
    created = client.post(
        "/api/repos/create", json={"organization": "evil", "name": "copy"}, headers=evil
    )
    assert created.status_code < 300, created.text
    ndjson = {"Content-Type": "application/x-ndjson", **evil}

    counts, uploads = row_counts(client), _uploads(settings)
    refused = client.post(
        f"/api/models/{EVIL}/commit/main", content=_lfs_commit(adapter_files), headers=ndjson
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "blob_not_uploaded"
    assert "was not uploaded to this namespace" in refused.json()["message"]
    assert row_counts(client) == counts
    assert _uploads(settings) == uploads

    # The LFS batch API asks evil for the bytes of a blob that acme's version holds, and
    # tells acme (which holds it) that nothing is to be uploaded: dedup in a namespace.
    weights = adapter_files["adapter_model.safetensors"]
    assert "actions" not in _batch(client, ACME, weights, acme)
    answer = _batch(client, EVIL, weights, evil)
    upload = answer["actions"]["upload"]
    put = client.put(upload["href"], content=weights)
    assert put.status_code < 300, put.text
    verify = client.post(
        answer["actions"]["verify"]["href"],
        json={"oid": sha256_of(weights), "size": len(weights)},
        headers=evil,
    )
    assert verify.status_code == 200, verify.text
    assert ("evil", sha256_of(weights)) in _uploads(settings)

    # The weights went through LFS; the small files come inline (base64 content).
    inline = [
        {
            "key": "file",
            "value": {
                "path": path,
                "content": base64.b64encode(data).decode(),
                "encoding": "base64",
            },
        }
        for path, data in adapter_files.items()
        if path != "adapter_model.safetensors"
    ]
    lines = [{"key": "header", "value": {"summary": "uploaded"}}, *inline]
    lines.append(json.loads(_lfs_commit({"adapter_model.safetensors": weights}).split(b"\n")[1]))
    committed = client.post(
        f"/api/models/{EVIL}/commit/main", content=_ndjson(lines), headers=ndjson
    )
    assert committed.status_code < 300, committed.text
    files = client.get(f"{API}/repos/{EVIL}/versions/1", headers=evil).json()["files"]
    assert {item["path"] for item in files} >= set(adapter_files)


def test_gc_drops_the_upload_rows_of_the_blobs_it_deletes(
    client: TestClient, settings: Settings
) -> None:
    admin = bearer(make_token(client, ["admin"], principal="root"))
    _acme, evil = _tokens(client)
    orphan = b"uploaded for evil, never committed"
    _put(client, orphan, evil, "evil")
    assert ("evil", sha256_of(orphan)) in _uploads(settings)

    kept = client.post(f"{API}/gc", headers=admin).json()  # default grace: kept, row too
    assert kept["deleted"] == []
    assert ("evil", sha256_of(orphan)) in _uploads(settings)

    done = client.post(f"{API}/gc", params={"grace_minutes": 0}, headers=admin).json()
    assert done["deleted"] == [sha256_of(orphan)]
    assert _uploads(settings) == set()
    manifest = {"notes.txt": orphan}
    refused = _publish(client, "evil/notes", manifest, evil)
    assert refused.json()["code"] == "blob_not_uploaded"


def test_lorry_push_of_identical_files_into_a_second_namespace_uploads_them_again(
    settings: Settings, lora_adapter_dir: Path
) -> None:
    from cli.main import app

    acme = make_token(settings, ["write", "read"], ["acme/*"], principal="acme-writer")
    evil = make_token(settings, ["write", "read"], ["evil/*"], principal="evil-writer")
    total = sum(len(data) for data in directory_files(lora_adapter_dir).values())
    runner = CliRunner()
    with serving(settings) as server:

        def push(repository: str, token: str) -> dict[str, Any]:
            env = {"LORRY_URL": server.url, "LORRY_TOKEN": token, "COLUMNS": "200"}
            args = ["push", str(lora_adapter_dir), repository, "--json"]
            result = runner.invoke(app, args, env=env)
            assert result.exit_code == 0, result.stderr
            pushed: dict[str, Any] = json.loads(result.stdout)
            return pushed

        first = push(ACME, acme)
        again = push("acme/second", acme)
        other = push(EVIL, evil)
    assert first["uploaded_bytes"] == total
    assert again["uploaded_bytes"] == 0  # the same namespace holds them: dedup
    assert other["uploaded_bytes"] == total  # evil must send the bytes itself
    assert other["version"] == 1
