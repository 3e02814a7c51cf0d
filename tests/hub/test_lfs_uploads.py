"""The Git LFS batch API driven by huggingface_hub's own LFS client code, on both backends.

``post_lfs_batch_info`` and ``lfs_upload`` are what ``create_commit`` runs for every
``"lfs"`` file when Xet is off; here they run unmodified against a live Lorry.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from huggingface_hub import CommitOperationAdd
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.lfs import post_lfs_batch_info

from registry import db
from registry.config import Settings
from registry.schemas.lfs import LFS_MEDIA_TYPE
from registry.storage import open_blob_store
from tests.hub.live import serve_logged
from tests.support.files import sha256_of

REPO = "acme/big-model"
PART = 5 * 1024 * 1024
BATCH = f"/{REPO}.git/info/lfs/objects/batch"


@dataclass
class LfsServer:
    url: str
    settings: Settings
    http: httpx.Client

    def stored(self, sha256: str) -> bool:
        return open_blob_store(self.settings).exists(sha256)

    def spools(self) -> list[str]:
        directory = self.settings.tmp_dir
        return (
            sorted(p.name for p in directory.rglob("*") if p.is_file())
            if directory.is_dir()
            else []
        )


@pytest.fixture
def lfs_server(backend_settings: Settings) -> Iterator[LfsServer]:
    settings = backend_settings.model_copy(update={"lfs_part_bytes": PART})
    db.upgrade(settings)
    with serve_logged(settings) as (url, _log), httpx.Client(base_url=url, timeout=60) as http:
        yield LfsServer(url=url, settings=settings, http=http)


def _payload(size: int, seed: int = 1) -> bytes:
    return (seed.to_bytes(4, "big") + os.urandom(60)) * (size // 64) + b"x" * (size % 64)


def _upload(server: LfsServer, path: Path, data: bytes) -> dict[str, object]:
    """The LFS part of ``create_commit``: batch, then ``lfs_upload`` (PUTs + verify)."""
    from huggingface_hub.lfs import lfs_upload

    path.write_bytes(data)
    operation = CommitOperationAdd(path_in_repo=path.name, path_or_fileobj=str(path))
    actions, errors, transfer = post_lfs_batch_info(
        upload_infos=[operation.upload_info],
        token=None,
        repo_type="model",
        repo_id=REPO,
        endpoint=server.url,
    )
    assert errors == []
    assert len(actions) == 1
    lfs_upload(operation=operation, lfs_batch_action=actions[0], endpoint=server.url)
    return {"action": actions[0], "transfer": transfer}


def test_basic_transfer_streams_a_file_into_the_blob_store(
    lfs_server: LfsServer, tmp_path: Path
) -> None:
    data = _payload(3 * 1024 * 1024 + 17)
    result = _upload(lfs_server, tmp_path / "small.safetensors", data)
    assert result["transfer"] == "basic"
    sha = sha256_of(data)
    assert lfs_server.stored(sha)
    head = lfs_server.http.head(f"/api/v1/blobs/sha256/{sha}")
    assert head.headers["content-length"] == str(len(data))
    assert lfs_server.spools() == []


def test_multipart_transfer_stores_the_parts_as_one_verified_blob(
    lfs_server: LfsServer, tmp_path: Path
) -> None:
    data = _payload(3 * PART + 1234, seed=2)
    result = _upload(lfs_server, tmp_path / "model.safetensors", data)
    assert result["transfer"] == "multipart"
    action = result["action"]
    assert isinstance(action, dict)
    header = action["actions"]["upload"]["header"]
    assert header["chunk_size"] == str(PART)
    assert sorted(k for k in header if k.isdigit()) == ["1", "2", "3", "4"]
    sha = sha256_of(data)
    assert lfs_server.stored(sha)
    store = open_blob_store(lfs_server.settings)
    assert b"".join(store.open_range(sha)) == data
    assert lfs_server.spools() == []


def test_a_stored_object_needs_no_upload(lfs_server: LfsServer, tmp_path: Path) -> None:
    data = _payload(PART + 1, seed=3)
    _upload(lfs_server, tmp_path / "a.bin", data)
    again = lfs_server.http.post(
        BATCH,
        json={
            "operation": "upload",
            "transfers": ["basic", "multipart"],
            "objects": [{"oid": sha256_of(data), "size": len(data)}],
        },
        headers={"Content-Type": LFS_MEDIA_TYPE},
    )
    assert again.status_code == 200, again.text
    assert again.headers["content-type"].startswith(LFS_MEDIA_TYPE)
    assert "actions" not in again.json()["objects"][0]


def _grant_urls(server: LfsServer, oid: str, size: int) -> dict[str, object]:
    response = server.http.post(
        BATCH,
        json={
            "operation": "upload",
            "transfers": ["basic", "multipart"],
            "objects": [{"oid": oid, "size": size}],
        },
        headers={"Content-Type": LFS_MEDIA_TYPE},
    )
    assert response.status_code == 200, response.text
    actions: dict[str, object] = response.json()["objects"][0]["actions"]
    return actions


def test_a_basic_upload_of_other_bytes_is_refused_and_stores_nothing(
    lfs_server: LfsServer,
) -> None:
    claimed = _payload(1024 * 1024, seed=4)
    sent = bytearray(claimed)
    sent[1000] ^= 0xFF
    actions = _grant_urls(lfs_server, sha256_of(claimed), len(claimed))
    href = actions["upload"]["href"]  # type: ignore[index]
    response = httpx.put(href, content=bytes(sent), timeout=60)
    assert response.status_code == 422, response.text
    assert "hash to" in response.json()["error"]
    assert not lfs_server.stored(sha256_of(claimed))
    assert not lfs_server.stored(sha256_of(bytes(sent)))
    assert lfs_server.spools() == []
    verify = lfs_server.http.post(
        actions["verify"]["href"],  # type: ignore[index]
        json={"oid": sha256_of(claimed), "size": len(claimed)},
    )
    assert verify.status_code == 404
    assert "was not received" in verify.json()["error"]


def test_a_multipart_upload_with_a_corrupted_part_is_refused_at_completion(
    lfs_server: LfsServer,
) -> None:
    claimed = _payload(2 * PART + 10, seed=5)
    actions = _grant_urls(lfs_server, sha256_of(claimed), len(claimed))
    upload = actions["upload"]  # type: ignore[index]
    parts = []
    for number in (1, 2, 3):
        chunk = bytearray(claimed[(number - 1) * PART : number * PART])
        if number == 2:
            chunk[5] ^= 1
        response = httpx.put(upload["header"][str(number)], content=bytes(chunk), timeout=60)
        assert response.status_code == 200, response.text
        parts.append({"partNumber": number, "etag": response.headers["etag"]})
    done = httpx.post(
        upload["href"],
        json={"oid": sha256_of(claimed), "parts": parts},
        headers={"Content-Type": LFS_MEDIA_TYPE},
        timeout=60,
    )
    assert done.status_code == 422, done.text
    assert "hash to" in done.json()["error"]
    assert not lfs_server.stored(sha256_of(claimed))
    assert lfs_server.spools() == []


def test_out_of_order_parts_are_hashed_at_completion(lfs_server: LfsServer) -> None:
    data = _payload(2 * PART + 99, seed=6)
    upload = _grant_urls(lfs_server, sha256_of(data), len(data))["upload"]  # type: ignore[index]
    etags = {}
    for number in (3, 1, 2):
        chunk = data[(number - 1) * PART : number * PART]
        response = httpx.put(upload["header"][str(number)], content=chunk, timeout=60)
        assert response.status_code == 200, response.text
        etags[number] = response.headers["etag"]
    missing = httpx.post(
        upload["href"],
        json={"oid": sha256_of(data), "parts": [{"partNumber": 1, "etag": etags[1]}]},
        timeout=60,
    )
    assert missing.status_code == 422
    assert not lfs_server.stored(sha256_of(data))


def _with_query(href: str, **changes: str) -> str:
    parts = urlsplit(href)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    encoded = "&".join(f"{key}={value}" for key, value in query.items())
    return parts._replace(query=encoded).geturl()


def test_forged_and_expired_upload_urls_are_refused(lfs_server: LfsServer) -> None:
    data = _payload(64 * 1024, seed=7)
    href = _grant_urls(lfs_server, sha256_of(data), len(data))["upload"]["href"]  # type: ignore[index]
    other = _payload(64 * 1024, seed=8)
    forged = [
        _with_query(href, oid=sha256_of(other)),
        _with_query(href, size=str(len(data) + 1)),
        _with_query(href, expires=str(int(time.time()) + 10**6)),
        _with_query(href, signature="0" * 64),
    ]
    for url in forged:
        response = httpx.put(url, content=other if "oid" in url else data, timeout=60)
        assert response.status_code == 403, (url, response.text)
        assert "signature does not match" in response.json()["error"]
    assert not lfs_server.stored(sha256_of(other))

    short = lfs_server.settings.model_copy(update={"upload_url_ttl_s": 1})
    from registry.services.upload_urls import new_grant, upload_url_key

    grant = new_grant(sha256_of(data), len(data), 0, short.upload_url_ttl_s)
    expired = grant.__class__(grant.upload_id, grant.oid, grant.size, 0, int(time.time()) - 5)
    key = upload_url_key(lfs_server.settings)
    url = f"{lfs_server.url}/api/lfs/uploads/{expired.upload_id}?{expired.query(key)}"
    response = httpx.put(url, content=data, timeout=60)
    assert response.status_code == 403
    assert "expired" in response.json()["error"]
    assert not lfs_server.stored(sha256_of(data))


def test_the_batch_api_refuses_what_it_does_not_serve(lfs_server: LfsServer) -> None:
    body = {"operation": "download", "objects": [{"oid": "a" * 64, "size": 1}]}
    response = lfs_server.http.post(BATCH, json=body)
    assert response.status_code == 422
    assert "resolve" in response.json()["error"]
    bad = {"operation": "upload", "objects": [{"oid": "not-hex", "size": 1}]}
    answer = lfs_server.http.post(BATCH, json=bad).json()["objects"][0]
    assert answer["error"]["code"] == 422
    with pytest.raises(ValueError, match="LFS batch API returned errors|improperly"):
        from huggingface_hub.lfs import UploadInfo

        info = UploadInfo(
            size=lfs_server.settings.max_file_bytes + 1, sample=b"", sha256=b"\1" * 32
        )
        _, errors, _ = post_lfs_batch_info(
            upload_infos=[info],
            token=None,
            repo_type="model",
            repo_id=REPO,
            endpoint=lfs_server.url,
        )
        raise ValueError(f"LFS batch API returned errors: {errors}")


def test_without_the_xet_path_a_client_with_xet_is_told_how_to_upload(
    lfs_server: LfsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub.utils import get_session, hf_raise_for_status

    monkeypatch.setattr(lfs_server.settings, "hub_xet", False)
    response = get_session().get(f"{lfs_server.url}/api/models/{REPO}/xet-write-token/main")
    with pytest.raises(HfHubHTTPError, match="HF_HUB_DISABLE_XET=1"):
        hf_raise_for_status(response)
