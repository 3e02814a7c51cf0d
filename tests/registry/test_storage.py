"""The BlobStore contract, against the local-disk and the S3 (moto) backends."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from registry.config import Settings
from registry.errors import BlobNotFound, StorageUnavailable
from registry.storage import (
    BlobStore,
    InvalidBlobUrl,
    LocalBlobStore,
    S3BlobStore,
    blob_key,
    open_blob_store,
)
from tests.support.processes import free_port
from tests.support.s3 import S3Server

MiB = 1024 * 1024
PART_SIZE = 5 * MiB
UNKNOWN = "0" * 64


def _s3_store(server: S3Server, bucket: str, prefix: str = "") -> S3BlobStore:
    return S3BlobStore(
        server.endpoint,
        bucket,
        prefix=prefix,
        access_key=server.access_key,
        secret_key=server.secret_key,
        region=server.region,
        part_size=PART_SIZE,
    )


@pytest.fixture(
    params=[
        pytest.param("local", id="local"),
        pytest.param("s3", id="s3", marks=pytest.mark.s3),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    server: S3Server = request.getfixturevalue("s3_server")
    return _s3_store(server, request.getfixturevalue("fresh_s3_bucket"), prefix="lorry")


def _blob(tmp_path: Path, data: bytes, name: str = "upload") -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _put(store: BlobStore, tmp_path: Path, data: bytes) -> str:
    path, digest = _blob(tmp_path, data, name=f"upload-{len(data)}-{data[:8].hex()}")
    store.put_file(path, digest)
    return digest


DATA = bytes(range(256)) * 41  # 10,496 bytes, not a multiple of anything interesting


def test_put_file_stores_bytes_under_their_digest(store: BlobStore, tmp_path: Path) -> None:
    digest = _put(store, tmp_path, DATA)

    assert store.exists(digest)
    assert store.size(digest) == len(DATA)
    assert b"".join(store.open_range(digest)) == DATA


def test_open_range_streams_the_requested_span(store: BlobStore, tmp_path: Path) -> None:
    digest = _put(store, tmp_path, DATA)

    assert b"".join(store.open_range(digest, 0, len(DATA))) == DATA
    assert b"".join(store.open_range(digest, 100)) == DATA[100:]
    assert b"".join(store.open_range(digest, 10, 20)) == DATA[10:20]
    assert b"".join(store.open_range(digest, len(DATA) - 5, len(DATA) + 1000)) == DATA[-5:]
    assert b"".join(store.open_range(digest, len(DATA) + 10)) == b""
    assert b"".join(store.open_range(digest, 30, 30)) == b""


def test_open_range_of_a_large_blob_yields_bounded_chunks(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(3 * MiB + 17)
    digest = _put(store, tmp_path, data)

    chunks = list(store.open_range(digest, 1, len(data) - 1))

    assert len(chunks) >= 3
    assert max(len(chunk) for chunk in chunks) <= MiB
    assert b"".join(chunks) == data[1:-1]


def test_abandoned_streams_do_not_exhaust_the_store(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(2 * MiB + 1)
    digest = _put(store, tmp_path, data)

    for _ in range(50):  # more than any connection pool holds
        stream = store.open_range(digest)
        assert next(iter(stream)) == data[:MiB]
        del stream

    assert b"".join(store.open_range(digest, MiB)) == data[MiB:]


def test_read_bytes_reads_at_most_length(store: BlobStore, tmp_path: Path) -> None:
    digest = _put(store, tmp_path, DATA)

    assert store.read_bytes(digest, 0, 8) == DATA[:8]
    assert store.read_bytes(digest, 256, 300) == DATA[256:556]
    assert store.read_bytes(digest, len(DATA) - 3, 100) == DATA[-3:]


def test_empty_blob_round_trips(store: BlobStore, tmp_path: Path) -> None:
    digest = _put(store, tmp_path, b"")

    assert store.exists(digest)
    assert store.size(digest) == 0
    assert b"".join(store.open_range(digest)) == b""


def test_putting_an_existing_digest_is_a_no_op(store: BlobStore, tmp_path: Path) -> None:
    digest = _put(store, tmp_path, DATA)
    again, same = _blob(tmp_path, DATA, name="again")

    store.put_file(again, same)

    assert same == digest
    assert list(store.iter_digests()) == [digest]
    assert b"".join(store.open_range(digest)) == DATA


def test_iter_digests_lists_every_stored_blob(store: BlobStore, tmp_path: Path) -> None:
    digests = {_put(store, tmp_path, f"blob {i}".encode()) for i in range(5)}

    assert set(store.iter_digests()) == digests


def test_delete_removes_the_blob(store: BlobStore, tmp_path: Path) -> None:
    keep = _put(store, tmp_path, b"keep")
    gone = _put(store, tmp_path, b"gone")

    store.delete(gone)

    assert not store.exists(gone)
    assert store.exists(keep)
    assert list(store.iter_digests()) == [keep]


def test_unknown_digest_raises_blob_not_found(store: BlobStore) -> None:
    assert not store.exists(UNKNOWN)
    with pytest.raises(BlobNotFound, match=UNKNOWN):
        store.size(UNKNOWN)
    with pytest.raises(BlobNotFound):
        store.open_range(UNKNOWN)
    with pytest.raises(BlobNotFound):
        store.read_bytes(UNKNOWN, 0, 10)


def test_check_passes_on_a_working_store(store: BlobStore) -> None:
    store.check()


def test_local_store_has_no_presigned_url(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    digest = _put(store, tmp_path, DATA)

    assert store.presigned_url(digest) is None


def test_local_store_keeps_blobs_under_their_key(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    digest = _put(store, tmp_path, DATA)

    assert (tmp_path / "blobs" / blob_key(digest)).read_bytes() == DATA


@pytest.mark.s3
def test_s3_store_keeps_blobs_under_prefix_and_key(
    s3_server: S3Server, fresh_s3_bucket: str, tmp_path: Path
) -> None:
    store = _s3_store(s3_server, fresh_s3_bucket, prefix="team/blobs-v1")
    digest = _put(store, tmp_path, DATA)

    names = [
        o.object_name for o in s3_server.client().list_objects(fresh_s3_bucket, recursive=True)
    ]

    assert names == [f"team/blobs-v1/{blob_key(digest)}"]


@pytest.mark.s3
def test_s3_presigned_url_downloads_the_blob(
    s3_server: S3Server, fresh_s3_bucket: str, tmp_path: Path
) -> None:
    store = _s3_store(s3_server, fresh_s3_bucket)
    digest = _put(store, tmp_path, DATA)

    url = store.presigned_url(digest, expires_s=60)

    assert url is not None
    assert url.startswith(f"http://{s3_server.endpoint}/{fresh_s3_bucket}/")
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == DATA


@pytest.mark.s3
def test_s3_put_of_a_file_larger_than_the_part_size_uses_multipart(
    s3_server: S3Server, fresh_s3_bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(12 * MiB + 123)
    store = _s3_store(s3_server, fresh_s3_bucket)

    digest = _put(store, tmp_path, data)

    stat = s3_server.client().stat_object(fresh_s3_bucket, blob_key(digest))
    assert stat.etag is not None and stat.etag.endswith("-3")  # 3 parts of <= 5 MiB
    assert store.size(digest) == len(data)
    assert hashlib.sha256(b"".join(store.open_range(digest))).hexdigest() == digest
    assert (
        b"".join(store.open_range(digest, 5 * MiB - 10, 5 * MiB + 10))
        == data[5 * MiB - 10 : 5 * MiB + 10]
    )


@pytest.mark.s3
def test_s3_put_consumes_the_uploaded_file(
    s3_server: S3Server, fresh_s3_bucket: str, tmp_path: Path
) -> None:
    store = _s3_store(s3_server, fresh_s3_bucket)
    path, digest = _blob(tmp_path, DATA)

    store.put_file(path, digest)

    assert not path.exists()


@pytest.mark.s3
def test_s3_store_reports_a_missing_bucket(s3_server: S3Server, tmp_path: Path) -> None:
    store = _s3_store(s3_server, "lorry-no-such-bucket")

    with pytest.raises(StorageUnavailable, match="lorry-no-such-bucket"):
        store.check()


@pytest.fixture
def restarts_s3(s3_server: S3Server) -> Iterator[S3Server]:
    """The S3 server, restarted after the test whatever happened in it."""
    yield s3_server
    s3_server.start()


@pytest.mark.s3
def test_s3_store_raises_storage_unavailable_quickly_when_the_server_is_down(
    restarts_s3: S3Server, fresh_s3_bucket: str, tmp_path: Path
) -> None:
    store = _s3_store(restarts_s3, fresh_s3_bucket)
    digest = _put(store, tmp_path, DATA)
    stream = store.open_range(digest)
    first = next(iter(stream))
    path, other = _blob(tmp_path, b"while down")

    restarts_s3.stop()

    operations = {
        "exists": lambda: store.exists(digest),
        "size": lambda: store.size(digest),
        "open_range": lambda: store.open_range(digest),
        "read_bytes": lambda: store.read_bytes(digest, 0, 4),
        "put_file": lambda: store.put_file(path, other),
        "delete": lambda: store.delete(digest),
        "iter_digests": lambda: list(store.iter_digests()),
        "check": store.check,
    }
    for name, operation in operations.items():
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as raised:
            operation()
        elapsed = time.monotonic() - started
        assert elapsed < 5, f"{name} took {elapsed:.1f}s to fail"
        assert restarts_s3.endpoint in raised.value.message, name
        assert "check that the server is running" in raised.value.message, name
    assert first  # the stream opened before the outage had already delivered data
    assert path.exists()  # a failed upload leaves the source for a retry


@pytest.mark.s3
def test_s3_store_recovers_after_the_server_restarts(
    restarts_s3: S3Server, fresh_s3_bucket: str, tmp_path: Path
) -> None:
    store = _s3_store(restarts_s3, fresh_s3_bucket)
    _put(store, tmp_path, DATA)
    restarts_s3.stop()
    with pytest.raises(StorageUnavailable):
        store.check()

    restarts_s3.start()  # moto starts empty: the bucket must be created again
    store.ensure_bucket()
    digest = _put(store, tmp_path, b"after the restart")

    store.check()
    assert store.read_bytes(digest, 0, 100) == b"after the restart"


def test_open_blob_store_defaults_to_a_directory_under_home(tmp_path: Path) -> None:
    store = open_blob_store(Settings(home=tmp_path, blob_url=None))

    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "blobs"


def test_open_blob_store_takes_a_file_url(tmp_path: Path) -> None:
    store = open_blob_store(Settings(home=tmp_path, blob_url=f"file://{tmp_path}/elsewhere"))

    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "elsewhere"


@pytest.mark.s3
def test_open_blob_store_takes_an_s3_url_and_creates_the_bucket(
    s3_server: S3Server, tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path,
        blob_url="s3://lorry-created-by-factory/some/prefix",
        s3_endpoint=s3_server.endpoint,
        s3_access_key=s3_server.access_key,
        s3_secret_key=s3_server.secret_key,
        s3_region=s3_server.region,
    )

    store = open_blob_store(settings)

    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == ("lorry-created-by-factory", "some/prefix")
    assert s3_server.client().bucket_exists("lorry-created-by-factory")
    store.check()


def test_open_blob_store_rejects_an_unknown_scheme(tmp_path: Path) -> None:
    with pytest.raises(InvalidBlobUrl, match=r"file://, s3://"):
        open_blob_store(Settings(home=tmp_path, blob_url="gs://bucket/blobs"))


def test_open_blob_store_reports_an_unreachable_s3_endpoint(tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    settings = Settings(home=tmp_path, blob_url="s3://bucket", s3_endpoint=endpoint)

    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match=endpoint):
        open_blob_store(settings)
    assert time.monotonic() - started < 5


@pytest.mark.postgres
def test_postgres_fixture_gives_a_working_empty_database(fresh_postgres_url: str) -> None:
    engine = sqlalchemy.create_engine(fresh_postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("select 1")).scalar_one() == 1
            tables = conn.execute(
                sqlalchemy.text("select count(*) from pg_tables where schemaname = 'public'")
            ).scalar_one()
    finally:
        engine.dispose()

    assert tables == 0
    assert fresh_postgres_url.startswith("postgresql+psycopg://")


def test_backend_settings_point_at_the_backend_pair(backend_settings: Settings) -> None:
    store = open_blob_store(backend_settings)
    store.check()
    engine = sqlalchemy.create_engine(backend_settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("select 1")).scalar_one() == 1
    finally:
        engine.dispose()

    if backend_settings.blob_url is None:
        assert isinstance(store, LocalBlobStore)
        assert backend_settings.resolved_database_url().startswith("sqlite:///")
    else:
        assert isinstance(store, S3BlobStore)
        assert backend_settings.resolved_database_url().startswith("postgresql+psycopg://")
