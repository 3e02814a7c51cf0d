"""The kept Xet xorbs (``registry.storage.xorbs``), on this server's disk and beside the
blobs on S3 (moto), where every replica reads them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from registry.config import Settings
from registry.storage import LocalBlobStore, S3BlobStore
from registry.storage.xorbs import (
    CHUNKS,
    STAGED_KEEP_S,
    LocalXorbs,
    S3Xorbs,
    XorbStore,
    open_xorb_store,
)
from tests.support.s3 import S3Server

XORB = "ab" * 32
OTHER = "cd" * 32
DATA = os.urandom(3 * 1024 * 1024 + 17)
INDEX_BYTES = b"\x00" * 16


def _s3(server: S3Server, bucket: str) -> S3BlobStore:
    return S3BlobStore(
        server.endpoint,
        bucket,
        prefix="lorry",
        access_key=server.access_key,
        secret_key=server.secret_key,
        region=server.region,
        part_size=5 * 1024 * 1024,
    )


@pytest.fixture(
    params=[
        pytest.param("local", id="local"),
        pytest.param("s3", id="s3", marks=pytest.mark.s3),
    ]
)
def xorbs(request: pytest.FixtureRequest, tmp_path: Path) -> XorbStore:
    settings = Settings(home=tmp_path / "home", database_url=None, blob_url=None)
    if request.param == "local":
        store = open_xorb_store(settings, LocalBlobStore(tmp_path / "blobs"))
        assert isinstance(store, LocalXorbs)
        return store
    server: S3Server = request.getfixturevalue("s3_server")
    s3 = _s3(server, request.getfixturevalue("fresh_s3_bucket"))
    store = open_xorb_store(settings, s3)
    assert isinstance(store, S3Xorbs)
    return store


def _stage(xorbs: XorbStore, xorb: str = XORB, data: bytes = DATA) -> Path:
    staged = xorbs.staging_path("acme", "model", xorb)
    staged.write_bytes(data)
    return staged


def test_a_kept_xorb_reads_back_by_range_and_is_kept_once(xorbs: XorbStore) -> None:
    assert xorbs.index("acme", "model", XORB) is None
    staged = _stage(xorbs)
    assert xorbs.keep("acme", "model", XORB, staged, INDEX_BYTES) is True
    assert not staged.exists()
    assert xorbs.index("acme", "model", XORB) == INDEX_BYTES
    start, length = 1_000_003, 2 * 1024 * 1024 + 5
    assert b"".join(xorbs.read("acme", "model", XORB, start, length)) == DATA[start:][:length]
    assert b"".join(xorbs.read("acme", "model", XORB, 0, len(DATA))) == DATA

    again = _stage(xorbs, data=b"other bytes")
    assert xorbs.keep("acme", "model", XORB, again, INDEX_BYTES) is False
    assert not again.exists()
    assert b"".join(xorbs.read("acme", "model", XORB, 0, 5)) == DATA[:5]
    # per repository: the same hash elsewhere is not kept
    assert xorbs.index("acme", "other", XORB) is None
    assert xorbs.index("other", "model", XORB) is None


def test_a_second_server_on_the_same_s3_bucket_reads_the_xorb(
    s3_server: S3Server, fresh_s3_bucket: str, tmp_path: Path
) -> None:
    one = S3Xorbs(tmp_path / "one", _s3(s3_server, fresh_s3_bucket))
    two = S3Xorbs(tmp_path / "two", _s3(s3_server, fresh_s3_bucket))
    assert one.keep("acme", "model", XORB, _stage(one), INDEX_BYTES)
    assert two.index("acme", "model", XORB) == INDEX_BYTES
    assert b"".join(two.read("acme", "model", XORB, 7, 100)) == DATA[7:107]


def test_sweep_removes_unused_xorbs_and_what_killed_uploads_left(xorbs: XorbStore) -> None:
    assert xorbs.keep("acme", "model", XORB, _stage(xorbs), INDEX_BYTES)
    assert xorbs.keep("acme", "model", OTHER, _stage(xorbs, OTHER), INDEX_BYTES)
    stale = _stage(xorbs)  # a staging file whose upload was killed
    old = time.time() - STAGED_KEEP_S - 60
    os.utime(stale, (old, old))
    fresh = _stage(xorbs)  # one that an upload is still writing

    assert xorbs.sweep("acme", "model", keep_s=3600) == 0
    assert xorbs.index("acme", "model", XORB) == INDEX_BYTES
    assert not stale.exists() and fresh.exists()

    time.sleep(1.1)
    xorbs.touch("acme", "model", OTHER)
    assert xorbs.sweep("acme", "model", keep_s=1) == 1  # XORB unused for over a second
    assert xorbs.index("acme", "model", XORB) is None
    assert xorbs.index("acme", "model", OTHER) == INDEX_BYTES
    fresh.unlink()


def test_chunks_whose_index_never_came_are_swept_on_s3(
    s3_server: S3Server, fresh_s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = _s3(s3_server, fresh_s3_bucket)
    xorbs = S3Xorbs(tmp_path, s3)
    s3.put_object(f"xet/acme/model/{XORB}{CHUNKS}", b"chunks of a killed keep")
    assert xorbs.index("acme", "model", XORB) is None
    assert xorbs.sweep("acme", "model", keep_s=3600) == 0
    assert s3.list_keys("xet/", recursive=True) == [f"xet/acme/model/{XORB}{CHUNKS}"]
    later = time.time() + 2 * STAGED_KEEP_S
    monkeypatch.setattr(time, "time", lambda: later)
    assert xorbs.sweep("acme", "model", keep_s=10 * STAGED_KEEP_S) == 0
    assert s3.list_keys("xet/", recursive=True) == []
