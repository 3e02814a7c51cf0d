"""Blobs in MinIO or any S3-compatible object store, through the ``minio`` SDK."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from registry.errors import BlobNotFound, StorageUnavailable
from registry.storage.base import CHUNK_SIZE, blob_key

__all__ = ["S3BlobStore"]

logger = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * 1024 * 1024
"""S3 refuses multipart parts below 5 MiB (except the last one)."""

_CONNECT_TIMEOUT_S = 3.0
_READ_TIMEOUT_S = 60.0
_PARALLEL_PART_UPLOADS = 2
"""Parts are read into memory one at a time per upload thread: peak memory of an
upload is about ``(_PARALLEL_PART_UPLOADS + 1) * part_size``."""

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchObject", "ResourceNotFound"})
_CREDENTIAL_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}
)


def _http_client() -> urllib3.PoolManager:
    """A pool that gives up on a dead endpoint within a few seconds.

    minio's default waits 5 minutes per connect and retries 5 times; a refused
    or unreachable endpoint should instead fail fast with ``StorageUnavailable``.
    """
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=_CONNECT_TIMEOUT_S, read=_READ_TIMEOUT_S),
        maxsize=32,
        retries=urllib3.Retry(
            total=3,
            connect=2,
            read=1,
            backoff_factor=0.2,
            status_forcelist=[500, 502, 503, 504],
        ),
    )


class _ObjectStream:
    """Iterates a GET response in chunks and always gives its connection back.

    The connection is released when the body is exhausted, on any error, on
    ``close()`` and, as a last resort, when the iterator is garbage collected
    (a client that disconnects mid-download never exhausts it).
    """

    def __init__(
        self,
        response: Any,
        store: S3BlobStore,
        sha256: str,
        length: int | None,
        label: str | None = None,
    ) -> None:
        self._response: Any = response
        self._store = store
        self._sha256: str | None = None if label is not None else sha256
        self._action = f"read {label}" if label is not None else f"read blob sha256:{sha256}"
        self._remaining = length

    def __iter__(self) -> _ObjectStream:
        return self

    def __next__(self) -> bytes:
        if self._response is None:
            raise StopIteration
        if self._remaining is not None and self._remaining <= 0:
            self.close()
            raise StopIteration
        size = CHUNK_SIZE if self._remaining is None else min(CHUNK_SIZE, self._remaining)
        try:
            with self._store._translate(self._action, self._sha256):
                chunk: bytes = self._response.read(size)
        except BaseException:
            self.close()
            raise
        if not chunk:
            self.close()
            raise StopIteration
        if self._remaining is not None:
            self._remaining -= len(chunk)
        return chunk

    def close(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response.close()
            response.release_conn()

    def __del__(self) -> None:
        self.close()


class S3BlobStore:
    """``s3://<bucket>/<prefix>/blobs/sha256/<2 hex>/<sha256>`` on an S3-compatible server.

    Every error of the SDK or of the HTTP layer is translated here: a missing
    object becomes ``BlobNotFound``, anything else ``StorageUnavailable`` with a
    message naming the endpoint and what to check.
    """

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        *,
        prefix: str = "",
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str | None = None,
        secure: bool = False,
        part_size: int = 64 * 1024 * 1024,
    ) -> None:
        if endpoint.startswith(("http://", "https://")):
            secure = endpoint.startswith("https://")
            endpoint = endpoint.split("://", 1)[1]
        endpoint = endpoint.rstrip("/")
        if part_size < MIN_PART_SIZE:
            raise StorageUnavailable(
                f"S3 part size {part_size} is below the S3 minimum of {MIN_PART_SIZE} bytes "
                "(5 MiB); raise LORRY_S3_PART_SIZE"
            )
        self.endpoint = endpoint
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = part_size
        self._url = f"{'https' if secure else 'http'}://{endpoint}"
        try:
            self._client = Minio(
                endpoint,
                access_key=access_key,
                secret_key=secret_key,
                region=region,
                secure=secure,
                http_client=_http_client(),
            )
        except ValueError as exc:
            raise StorageUnavailable(
                f"invalid S3 endpoint {endpoint!r}: {exc}; set LORRY_S3_ENDPOINT to host:port"
            ) from exc

    def __repr__(self) -> str:
        where = f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket
        return f"S3BlobStore({self._url}, s3://{where})"

    def _key(self, sha256: str) -> str:
        key = blob_key(sha256)
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextmanager
    def _translate(self, action: str, sha256: str | None = None) -> Iterator[None]:
        """Turn minio and urllib3 errors into Lorry's storage errors."""
        where = f"bucket {self.bucket!r} at {self._url}"
        try:
            yield
        except S3Error as exc:
            if exc.code in _NOT_FOUND_CODES and sha256 is not None:
                raise BlobNotFound(f"blob sha256:{sha256} is not in the store") from None
            if exc.code == "NoSuchBucket":
                raise StorageUnavailable(
                    f"could not {action}: {where} does not exist; create it or let Lorry "
                    "create it on startup (check LORRY_BLOB_URL)"
                ) from exc
            if exc.code in _CREDENTIAL_CODES:
                raise StorageUnavailable(
                    f"could not {action}: {where} refused the credentials ({exc.code}); "
                    "check LORRY_S3_ACCESS_KEY, LORRY_S3_SECRET_KEY and the bucket policy"
                ) from exc
            raise StorageUnavailable(
                f"could not {action}: {where} answered {exc.code}: {exc.message}"
            ) from exc
        except (MinioException, urllib3.exceptions.HTTPError, ConnectionError) as exc:
            raise StorageUnavailable(
                f"could not {action}: S3 endpoint {self._url} is unreachable or failing "
                f"({type(exc).__name__}: {exc}); check that the server is running and "
                "LORRY_S3_ENDPOINT / LORRY_S3_SECURE point at it"
            ) from exc

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet (called once, by the factory)."""
        with self._translate(f"create bucket {self.bucket!r}"):
            if self._client.bucket_exists(self.bucket):
                return
            try:
                self._client.make_bucket(self.bucket)
            except S3Error as exc:
                if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise
            logger.info("created bucket %s at %s", self.bucket, self._url)

    def exists(self, sha256: str) -> bool:
        try:
            self.size(sha256)
        except BlobNotFound:
            return False
        return True

    def size(self, sha256: str) -> int:
        with self._translate(f"look up blob sha256:{sha256}", sha256):
            stat = self._client.stat_object(self.bucket, self._key(sha256))
        return int(stat.size or 0)

    def put_file(self, path: Path, sha256: str) -> None:
        """Upload ``path`` (multipart above ``part_size``); the source is removed afterwards."""
        if self.exists(sha256):
            return
        with self._translate(f"upload blob sha256:{sha256}"):
            self._client.fput_object(
                self.bucket,
                self._key(sha256),
                str(path),
                content_type="application/octet-stream",
                part_size=self.part_size,
                num_parallel_uploads=_PARALLEL_PART_UPLOADS,
            )
        path.unlink(missing_ok=True)

    def open_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if end is not None and end <= start:
            self.size(sha256)
            return iter(())
        length = None if end is None else end - start
        with self._translate(f"read blob sha256:{sha256}", sha256):
            try:
                response = self._client.get_object(
                    self.bucket, self._key(sha256), offset=start, length=length or 0
                )
            except S3Error as exc:
                if exc.code == "InvalidRange":
                    return iter(())
                raise
        return _ObjectStream(response, self, sha256, length)

    def read_bytes(self, sha256: str, start: int, length: int) -> bytes:
        if length <= 0:
            self.size(sha256)
            return b""
        return b"".join(self.open_range(sha256, start, start + length))

    def delete(self, sha256: str) -> None:
        with self._translate(f"delete blob sha256:{sha256}"):
            self._client.remove_object(self.bucket, self._key(sha256))

    def iter_digests(self) -> Iterator[str]:
        base = f"{self.prefix}/blobs/sha256/" if self.prefix else "blobs/sha256/"
        with self._translate("list blobs"):
            for obj in self._client.list_objects(self.bucket, prefix=base, recursive=True):
                name = (obj.object_name or "").rsplit("/", 1)[-1]
                if _HEX64.match(name):
                    yield name

    def put_object(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (relative to the store's prefix), beside the blobs:
        audit checkpoints (``checkpoints/...``), which gc never lists."""
        with self._translate(f"write {key}"):
            self._client.put_object(
                self.bucket, self._object(key), BytesIO(data), len(data), content_type="text/plain"
            )

    def read_object(self, key: str, limit: int) -> bytes:
        """The first ``limit`` bytes of the object at ``key`` (relative to the prefix)."""
        with self._translate(f"read {key}"):
            response = self._client.get_object(self.bucket, self._object(key), 0, limit)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

    def list_keys(self, prefix: str, *, recursive: bool) -> list[str]:
        """Keys under ``prefix`` (relative to the store's prefix); without ``recursive``,
        one level, sub-folders ending in ``/``."""
        base = self._object("")
        with self._translate(f"list {prefix}"):
            return [
                (obj.object_name or "")[len(base) :]
                for obj in self._client.list_objects(
                    self.bucket, prefix=self._object(prefix), recursive=recursive
                )
            ]

    def read_object_if_any(self, key: str, limit: int) -> bytes | None:
        """The first ``limit`` bytes of the object at ``key``; ``None`` when there is none."""
        try:
            with self._translate(f"read {key}", key):  # a missing key: BlobNotFound
                response = self._client.get_object(self.bucket, self._object(key), 0, limit)
        except BlobNotFound:
            return None
        with self._translate(f"read {key}"):
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

    def put_object_file(self, key: str, path: Path) -> None:
        """Upload the file at ``path`` to ``key`` (relative to the prefix), beside the blobs
        (Xet xorbs, ``registry.storage.xorbs``)."""
        with self._translate(f"write {key}"):
            self._client.fput_object(
                self.bucket,
                self._object(key),
                str(path),
                content_type="application/octet-stream",
                part_size=self.part_size,
                num_parallel_uploads=_PARALLEL_PART_UPLOADS,
            )

    def read_object_range(self, key: str, start: int, length: int) -> Iterator[bytes]:
        """``length`` bytes of the object at ``key`` from ``start``, in pieces; a missing
        object is a ``StorageUnavailable`` (callers check for it first)."""
        with self._translate(f"read {key}"):
            response = self._client.get_object(self.bucket, self._object(key), start, length)
        return _ObjectStream(response, self, key, length, label=key)

    def object_times(self, prefix: str) -> list[tuple[str, datetime]]:
        """Keys under ``prefix`` (relative to the prefix, recursively) and when each was
        last written."""
        base = self._object("")
        with self._translate(f"list {prefix}"):
            return [
                (
                    (obj.object_name or "")[len(base) :],
                    (obj.last_modified or datetime.now(UTC)).astimezone(UTC),
                )
                for obj in self._client.list_objects(
                    self.bucket, prefix=self._object(prefix), recursive=True
                )
            ]

    def remove_object(self, key: str) -> None:
        with self._translate(f"delete {key}"):
            self._client.remove_object(self.bucket, self._object(key))

    def _object(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def modified_at(self, sha256: str) -> datetime:
        with self._translate(f"look up blob sha256:{sha256}", sha256):
            stat = self._client.stat_object(self.bucket, self._key(sha256))
        if stat.last_modified is None:
            return datetime.now(UTC)
        return stat.last_modified.astimezone(UTC)

    def check(self) -> None:
        probe = f"{self.prefix}/.readyz" if self.prefix else ".readyz"
        with self._translate("check the blob store"):
            if not self._client.bucket_exists(self.bucket):
                raise StorageUnavailable(
                    f"bucket {self.bucket!r} does not exist at {self._url}; "
                    "create it or check LORRY_BLOB_URL"
                )
            self._client.put_object(self.bucket, probe, BytesIO(b"ok"), 2)
            self._client.remove_object(self.bucket, probe)

    def presigned_url(self, sha256: str, expires_s: int = 3600) -> str | None:
        with self._translate(f"sign a URL for blob sha256:{sha256}", sha256):
            url: str = self._client.presigned_get_object(
                self.bucket, self._key(sha256), expires=timedelta(seconds=expires_s)
            )
        return url
