"""What the Xet storage routes refuse: xorbs and shards that do not hash to what they
claim, shards that name chunks they cannot have, tokens of another repository, and
``xet-write-token`` without ``write``. A refusal stores nothing (both backend pairs).

The xorbs and shards here are built by hand to be altered; hf_xet's own ones (that the
same code accepts) are in ``test_xet_push``.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import lz4.frame
import pytest
from huggingface_hub import HfApi
from sqlalchemy import select

from registry import db
from registry.config import Settings
from registry.services import xet, xet_xorbs
from registry.services.xet_format import (
    SHARD_TAG,
    chunk_hash,
    hash_from_hex,
    hash_hex,
    xorb_hash,
)
from registry.storage import S3BlobStore, open_blob_store
from registry.tables import BlobUpload
from tests.hub.live import LiveRegistry, serve_logged
from tests.support.rest import database_engine, row_counts
from tests.support.tokens import bearer, make_token

REPO = "acme/xet-model"
CHUNKS = [os.urandom(40_000), os.urandom(70_000), b"lorry " * 9_000]


@pytest.fixture
def registry(backend_settings: Settings) -> Iterator[LiveRegistry]:
    db.upgrade(backend_settings)
    with (
        serve_logged(backend_settings) as (url, log),
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        live = LiveRegistry(url=url, settings=backend_settings, log=log, http=http)
        HfApi(endpoint=url, token=False).create_repo(REPO)
        HfApi(endpoint=url, token=False).create_repo("acme/other")
        yield live


def _xorb(chunks: list[bytes]) -> tuple[bytes, str]:
    """A xorb of ``chunks`` stored uncompressed, and its hash."""
    body = b"".join(
        bytes([0]) + len(c).to_bytes(3, "little") + bytes([0]) + len(c).to_bytes(3, "little") + c
        for c in chunks
    )
    return body, hash_hex(xorb_hash([(chunk_hash(c), len(c)) for c in chunks]))


def _packed_xorb(chunks: list[tuple[bytes, int]]) -> tuple[bytes, str]:
    """A xorb of ``(bytes, scheme)`` chunks, compressed as hf_xet does (1: LZ4 frame, 2:
    LZ4 frame of the bytes grouped by position mod 4), and its hash."""
    body = b""
    for data, scheme in chunks:
        grouped = b"".join(data[k::4] for k in range(4)) if scheme == 2 else data
        stored = lz4.frame.compress(grouped) if scheme else data
        size, length = len(data).to_bytes(3, "little"), len(stored).to_bytes(3, "little")
        body += bytes([0]) + length + bytes([scheme]) + size + stored
    return body, hash_hex(xorb_hash([(chunk_hash(data), len(data)) for data, _ in chunks]))


def _pieces(body: bytes, size: int) -> Iterator[bytes]:
    """``body`` as a streamed (chunked) request body in pieces of ``size`` bytes."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _xet_files(registry: LiveRegistry) -> list[str]:
    """The names of every staged (``.``-names, on the server's disk) or kept xorb file
    (on its disk, or beside the blobs on S3)."""
    local = [p.name for p in (registry.settings.home / "xet").rglob("*") if p.is_file()]
    store = open_blob_store(registry.settings)
    kept = store.list_keys("xet/", recursive=True) if isinstance(store, S3BlobStore) else []
    return sorted(local + [key.rsplit("/", 1)[-1] for key in kept])


def _shard(xorb: str, start: int, end: int, size: int, sha256: str) -> bytes:
    """A shard with one file: chunks ``start`` to ``end`` of ``xorb``, said to hash to
    ``sha256``."""
    entry = os.urandom(32) + struct.pack("<IIQ", 1 << 30, 1, 0)
    term = hash_from_hex(xorb) + struct.pack("<IIII", 0, size, start, end)
    metadata = hash_from_hex(sha256) + bytes(16)
    bookend = b"\xff" * 32 + bytes(16)
    return SHARD_TAG + struct.pack("<QQ", 2, 0) + entry + term + metadata + bookend + bookend


def _token(registry: LiveRegistry, repo: str = REPO, **headers: str) -> dict[str, str]:
    answer = registry.http.get(f"/api/models/{repo}/xet-write-token/main", headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["casUrl"] == f"{registry.url}/api/xet/{repo}"
    assert answer.headers["X-Xet-Access-Token"] == body["accessToken"]
    return bearer(body["accessToken"])


def _stored(registry: LiveRegistry) -> list[str]:
    return sorted(open_blob_store(registry.settings).iter_digests())


def test_a_xorb_is_kept_only_when_its_chunks_hash_to_its_name(registry: LiveRegistry) -> None:
    auth = _token(registry)
    body, name = _xorb(CHUNKS)
    url = f"/api/xet/{REPO}/v1/xorbs/default/{name}"
    altered = body[:100] + bytes([body[100] ^ 1]) + body[101:]

    refused = registry.http.post(url, content=altered, headers=auth)
    assert refused.status_code == 422
    assert f"not {name}" in refused.json()["error"]
    cut = registry.http.post(url, content=body[:-10], headers=auth)
    assert cut.status_code == 422
    assert not [f for f in _xet_files(registry) if f.endswith(".chunks")]

    assert registry.http.post(url, content=body, headers=auth).json() == {"was_inserted": True}
    assert registry.http.post(url, content=body, headers=auth).json() == {"was_inserted": False}
    assert (
        registry.http.get(
            f"/api/xet/{REPO}/v1/chunks/default-merkledb/{name}", headers=auth
        ).status_code
        == 404
    )


def test_a_shard_is_built_into_a_blob_only_when_it_tells_the_truth(
    registry: LiveRegistry,
) -> None:
    auth = _token(registry)
    body, name = _xorb(CHUNKS)
    assert (
        registry.http.post(
            f"/api/xet/{REPO}/v1/xorbs/default/{name}", content=body, headers=auth
        ).status_code
        == 200
    )
    data = b"".join(CHUNKS[1:3])
    sha256 = hashlib.sha256(data).hexdigest()
    shards = f"/api/xet/{REPO}/v1/shards"
    before = (row_counts(registry.settings), _stored(registry))

    lies = {
        "sha256": _shard(name, 1, 3, len(data), hashlib.sha256(b"other").hexdigest()),
        "size": _shard(name, 1, 3, len(data) + 1, sha256),
        "range": _shard(name, 1, 4, len(data), sha256),
        "xorb": _shard(hash_hex(os.urandom(32)), 1, 3, len(data), sha256),
        "tag": b"X" + _shard(name, 1, 3, len(data), sha256)[1:],
        "cut": _shard(name, 1, 3, len(data), sha256)[:100],
    }
    for what, shard in lies.items():
        answer = registry.http.post(shards, content=shard, headers=auth)
        assert answer.status_code == 422, what
    assert (row_counts(registry.settings), _stored(registry)) == before
    spool = registry.settings.tmp_dir
    assert not [p for p in spool.rglob("*") if p.is_file()] if spool.is_dir() else True

    answer = registry.http.post(shards, content=_shard(name, 1, 3, len(data), sha256), headers=auth)
    assert answer.json() == {"result": 1}
    assert open_blob_store(registry.settings).read_bytes(sha256, 0, len(data)) == data
    assert row_counts(registry.settings) == before[0]  # referenced by nothing until a commit


def test_a_xet_token_is_valid_for_its_repository_only(registry: LiveRegistry) -> None:
    writer = make_token(registry.settings, ["write"], ["acme"])
    auth = _token(registry, **bearer(writer))
    body, name = _xorb(CHUNKS[:1])
    for repo in ("acme/other", "other/xet-model"):
        answer = registry.http.post(
            f"/api/xet/{repo}/v1/xorbs/default/{name}", content=body, headers=auth
        )
        assert answer.status_code == 403, repo
    forged = {
        "Authorization": auth["Authorization"][:-1]
        + ("0" if auth["Authorization"][-1] != "0" else "1")
    }
    for headers in (forged, {}, bearer(writer)):
        answer = registry.http.post(
            f"/api/xet/{REPO}/v1/xorbs/default/{name}", content=body, headers=headers
        )
        assert answer.status_code == 403
    assert not [f for f in _xet_files(registry) if f.endswith(".chunks")]

    reader = make_token(registry.settings, ["read"], ["acme"])
    elsewhere = make_token(registry.settings, ["write"], ["other"])
    for token in (reader, elsewhere):
        answer = registry.http.get(
            f"/api/models/{REPO}/xet-write-token/main", headers=bearer(token)
        )
        assert answer.status_code == 403
    assert registry.http.get(f"/api/models/{REPO}/xet-write-token/main").status_code == 401
    missing = registry.http.get(
        "/api/models/acme/nothing/xet-write-token/main", headers=bearer(writer)
    )
    assert missing.status_code == 404


def test_a_xorb_that_no_shard_used_for_xorb_keep_s_is_removed(
    registry: LiveRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = _token(registry)
    body, name = _xorb(CHUNKS)
    assert (
        registry.http.post(
            f"/api/xet/{REPO}/v1/xorbs/default/{name}", content=body, headers=auth
        ).status_code
        == 200
    )
    kept = [f"{name}.chunks", f"{name}.idx"]
    assert _xet_files(registry) == kept
    monkeypatch.setattr(xet, "XORB_KEEP_S", 2)  # the server runs in this process
    time.sleep(2.5)
    data = CHUNKS[0]
    shard = _shard(name, 0, 1, len(data), hashlib.sha256(data).hexdigest())
    assert (
        registry.http.post(f"/api/xet/{REPO}/v1/shards", content=shard, headers=auth).status_code
        == 200
    )
    _token(registry)  # issuing a token sweeps the repository's xorbs
    assert _xet_files(registry) == kept  # the shard used it: renewed

    staging = registry.settings.home / "xet" / REPO
    staged = staging / f".{name}.chunks.0123abcd"  # what a killed upload leaves
    staged.write_bytes(b"half")
    old = time.time() - 7200
    os.utime(staged, (old, old))
    time.sleep(2.5)
    _token(registry)
    assert _xet_files(registry) == []


def test_a_xorb_is_verified_while_it_streams_and_kept_only_whole(registry: LiveRegistry) -> None:
    auth = _token(registry)
    chunks = [(b"SELECT 1; " * 9_000, 2), (os.urandom(70_001), 0), (b"lorry " * 20_000, 1)]
    body, name = _packed_xorb(chunks)
    url = f"/api/xet/{REPO}/v1/xorbs/default/{name}"
    first = len(body) - len(_packed_xorb(chunks[2:])[0])  # where the last chunk starts
    for cut, why in ((first + 5, "inside a chunk header"), (len(body) - 3, "inside a chunk")):
        answer = registry.http.post(url, content=_pieces(body[:cut], 1_000), headers=auth)
        assert answer.status_code == 422
        assert why in answer.json()["error"]
    wrong = registry.http.post(
        f"/api/xet/{REPO}/v1/xorbs/default/{_xorb(CHUNKS)[1]}",
        content=_pieces(body, 4_093),
        headers=auth,
    )
    assert wrong.status_code == 422
    assert "altered or cut short" in wrong.json()["error"]
    assert _xet_files(registry) == []

    footer = b"XETBLOB" + os.urandom(300)
    answer = registry.http.post(url, content=_pieces(body + footer, 4_093), headers=auth)
    assert answer.json() == {"was_inserted": True}
    assert not [f for f in _xet_files(registry) if f.startswith(".")]
    data = b"".join(data for data, _ in chunks)
    sha256 = hashlib.sha256(data).hexdigest()
    shard = _shard(name, 0, 3, len(data), sha256)
    assert registry.http.post(f"/api/xet/{REPO}/v1/shards", content=shard, headers=auth).json() == {
        "result": 1
    }
    assert open_blob_store(registry.settings).read_bytes(sha256, 0, len(data)) == data


def test_a_xorb_larger_than_the_limit_is_refused_and_leaves_nothing(
    registry: LiveRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xet_xorbs, "MAX_XORB_BYTES", 100_000)
    auth = _token(registry)
    body, name = _xorb([os.urandom(60_000), os.urandom(60_000)])
    answer = registry.http.post(
        f"/api/xet/{REPO}/v1/xorbs/default/{name}", content=_pieces(body, 8_192), headers=auth
    )
    assert answer.status_code == 413
    assert "larger than 100000 bytes" in answer.json()["error"]
    assert _xet_files(registry) == []


def test_a_xorb_whose_chunks_unpack_past_the_limit_is_refused_and_leaves_nothing(
    registry: LiveRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xet_xorbs, "MAX_XORB_BYTES", 300_000)
    auth = _token(registry)
    body, name = _packed_xorb([(bytes(200_000), 1), (bytes(200_000), 1)])
    assert len(body) < 10_000  # the body is small; what it unpacks to is not
    answer = registry.http.post(
        f"/api/xet/{REPO}/v1/xorbs/default/{name}", content=_pieces(body, 1_000), headers=auth
    )
    assert answer.status_code == 413
    assert "unpack to more than 300000 bytes" in answer.json()["error"]
    assert _xet_files(registry) == []


def _wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"waited 20 s for {what}")
        time.sleep(0.05)


def test_a_xorb_whose_client_goes_away_mid_body_leaves_no_staged_file(
    registry: LiveRegistry,
) -> None:
    auth = _token(registry)
    body, name = _xorb([os.urandom(64 * 1024) for _ in range(96)])  # 6 MiB: over one batch
    url = urlsplit(registry.url)
    head = (
        f"POST /api/xet/{REPO}/v1/xorbs/default/{name} HTTP/1.1\r\n"
        f"Host: {url.netloc}\r\nAuthorization: {auth['Authorization']}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(head + body[: 5 * 1024 * 1024])
        _wait_for(lambda: _xet_files(registry), "the staged file")
        (staged,) = _xet_files(registry)
        assert staged.startswith(".")
    _wait_for(lambda: not _xet_files(registry), "the staged file to be removed")


def _uploaders(registry: LiveRegistry, sha256: str) -> list[str]:
    with database_engine(registry.settings) as engine, engine.connect() as connection:
        query = select(BlobUpload.namespace).where(BlobUpload.sha256 == sha256)
        return sorted(connection.execute(query).scalars())


def test_a_shard_naming_a_stored_blob_must_still_bring_its_bytes(
    registry: LiveRegistry, tmp_path: Path
) -> None:
    auth = _token(registry)
    body, name = _xorb(CHUNKS)
    url = f"/api/xet/{REPO}/v1/xorbs/default/{name}"
    assert registry.http.post(url, content=body, headers=auth).status_code == 200
    data = CHUNKS[0]
    sha256 = hashlib.sha256(data).hexdigest()
    elsewhere = tmp_path / "blob"  # stored already, as if another namespace had pushed it
    elsewhere.write_bytes(data)
    open_blob_store(registry.settings).put_file(elsewhere, sha256)
    shards = f"/api/xet/{REPO}/v1/shards"

    lie = _shard(name, 1, 2, len(CHUNKS[1]), sha256)  # other bytes under the blob's name
    assert registry.http.post(shards, content=lie, headers=auth).status_code == 422
    assert _uploaders(registry, sha256) == []

    truth = _shard(name, 0, 1, len(data), sha256)
    assert registry.http.post(shards, content=truth, headers=auth).json() == {"result": 1}
    assert _uploaders(registry, sha256) == ["acme"]
    assert open_blob_store(registry.settings).read_bytes(sha256, 0, len(data) + 1) == data
