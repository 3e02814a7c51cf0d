"""Blob uploads: streamed, hashed, verified, deduplicated; nothing kept from a bad upload."""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient

from registry.app import create_app
from registry.config import Settings
from registry.errors import DigestMismatch, StorageUnavailable
from registry.services import blobs
from registry.storage import open_blob_store
from tests.support.files import sha256_of
from tests.support.rest import API


def _spool_is_empty(settings: Settings) -> bool:
    return not settings.tmp_dir.exists() or not any(settings.tmp_dir.iterdir())


def test_upload_stores_a_blob_once_and_head_reports_its_size(
    client: TestClient, settings: Settings
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    sha = sha256_of(data)
    assert client.head(f"{API}/blobs/sha256/{sha}").status_code == 404
    first = client.put(f"{API}/blobs/sha256/{sha}", content=data)
    assert first.status_code == 201
    assert first.json() == {"sha256": sha, "size": len(data)}
    again = client.put(f"{API}/blobs/sha256/{sha}", content=data)
    assert again.status_code == 201  # the same answer: it says nothing of other namespaces
    head = client.head(f"{API}/blobs/sha256/{sha}")
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(data)
    assert _spool_is_empty(settings)


def test_streamed_upload_without_length_larger_than_a_batch_round_trips(
    client: TestClient, settings: Settings
) -> None:
    chunk = os.urandom(1024 * 1024)
    count = 19
    sha = sha256_of(chunk * count)

    def body() -> Iterator[bytes]:
        for _ in range(count):
            yield chunk

    response = client.put(f"{API}/blobs/sha256/{sha}", content=body())
    assert response.status_code == 201, response.text
    assert response.json()["size"] == count * len(chunk)
    assert _spool_is_empty(settings)
    store = client.app.state.blob_store  # type: ignore[attr-defined]
    assert b"".join(store.open_range(sha)) == chunk * count


def test_upload_whose_bytes_do_not_match_the_digest_stores_nothing(
    client: TestClient, settings: Settings
) -> None:
    claimed = sha256_of(b"what the client meant")
    response = client.put(f"{API}/blobs/sha256/{claimed}", content=b"what arrived")
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "digest_mismatch"
    assert "upload it again" in body["message"]
    assert client.head(f"{API}/blobs/sha256/{claimed}").status_code == 404
    assert _spool_is_empty(settings)


def test_upload_with_a_malformed_digest_is_refused(client: TestClient) -> None:
    response = client.put(f"{API}/blobs/sha256/ABC", content=b"x")
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_reference"
    assert client.head(f"{API}/blobs/sha256/not-hex").status_code == 422


def test_upload_over_the_file_limit_is_413_up_front_and_while_streaming(
    sqlite_settings: Settings,
) -> None:
    settings = sqlite_settings.model_copy(update={"max_file_bytes": 1000})
    data = b"x" * 1001
    sha = sha256_of(data)
    with TestClient(create_app(settings)) as client:
        declared = client.put(f"{API}/blobs/sha256/{sha}", content=data)
        assert declared.status_code == 413
        assert declared.json()["code"] == "too_large"
        assert "LORRY_MAX_FILE_BYTES" in declared.json()["message"]
        streamed = client.put(f"{API}/blobs/sha256/{sha}", content=iter([data[:600], data[600:]]))
        assert streamed.status_code == 413
        assert client.head(f"{API}/blobs/sha256/{sha}").status_code == 404
    assert _spool_is_empty(settings)


def test_upload_goes_through_the_spool_directory_of_the_settings(
    sqlite_client: TestClient, sqlite_settings: Settings
) -> None:
    data = b"spooled"
    sqlite_client.put(f"{API}/blobs/sha256/{sha256_of(data)}", content=data)
    blob = Path(sqlite_settings.home) / "blobs" / "blobs" / "sha256"
    assert any(blob.rglob(sha256_of(data)))
    assert sqlite_settings.tmp_dir.is_dir()


async def _chunks(data: bytes, size: int = 1 << 20) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_upload_shorter_than_its_content_length_stores_nothing(
    sqlite_settings: Settings,
) -> None:
    # The spool file is preallocated to the declared length: the bytes that never
    # came must not become part of a blob.
    data = os.urandom(3 * 1024 * 1024)
    store = open_blob_store(sqlite_settings)
    with pytest.raises(DigestMismatch, match="Content-Length"):
        anyio.run(
            blobs.receive_blob,
            store,
            sqlite_settings,
            sha256_of(data),
            _chunks(data),
            len(data) + 4096,
        )
    assert not store.exists(sha256_of(data))
    assert _spool_is_empty(sqlite_settings)


def test_upload_that_does_not_fit_on_disk_is_refused_before_reading_it(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A mock: filling a real disk needs a mounted small filesystem, which tests cannot make.
    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_space, raising=False)
    data = b"weights" * 1000
    store = open_blob_store(sqlite_settings)
    with pytest.raises(StorageUnavailable, match="no space left"):
        anyio.run(
            blobs.receive_blob, store, sqlite_settings, sha256_of(data), _chunks(data), len(data)
        )
    assert not store.exists(sha256_of(data))
    assert _spool_is_empty(sqlite_settings)


def test_upload_of_an_unaligned_size_round_trips_byte_for_byte(
    client: TestClient, settings: Settings
) -> None:
    # Two full batches go to disk directly (O_DIRECT where the filesystem allows it),
    # the unaligned tail through the page cache: every byte must land where it belongs.
    data = os.urandom(2 * 8 * 1024 * 1024 + 3 * 4096 + 7)
    sha = sha256_of(data)
    assert client.put(f"{API}/blobs/sha256/{sha}", content=data).status_code == 201
    store = client.app.state.blob_store  # type: ignore[attr-defined]
    assert b"".join(store.open_range(sha)) == data
    assert _spool_is_empty(settings)
