"""The blob store contract: content-addressed, immutable byte blobs keyed by sha256."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

CHUNK_SIZE = 1024 * 1024


def blob_key(sha256: str) -> str:
    """Object key of a blob: ``blobs/sha256/<first 2 hex>/<sha256>``."""
    return f"blobs/sha256/{sha256[:2]}/{sha256}"


@runtime_checkable
class BlobStore(Protocol):
    """Where version files live, once each, by the sha256 of their bytes.

    Contract:
    - ``put_file`` takes a local file whose sha256 the caller has computed and
      verified while receiving it; the store moves or uploads it under
      ``blob_key(sha256)`` (multipart for large files, never the whole file in
      memory). Putting a digest that exists is a no-op. After ``put_file``
      returns, ``exists`` is true and the bytes are durable. The source file
      may be consumed (moved) by the call.
    - ``open_range`` streams ``[start, end)`` (``end=None``: to the end) in
      chunks; it raises ``BlobNotFound`` for an unknown digest.
    - Backend failures are raised as ``StorageUnavailable`` with a message,
      never as the backend's own exception types.
    - ``presigned_url`` returns a time-limited GET URL where the backend can
      serve bytes itself (S3), else ``None`` (local disk).
    """

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int:
        """Size in bytes; ``BlobNotFound`` if absent."""
        ...

    def put_file(self, path: Path, sha256: str) -> None: ...

    def open_range(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]: ...

    def read_bytes(self, sha256: str, start: int, length: int) -> bytes:
        """Read a small span (headers); at most ``length`` bytes."""
        ...

    def delete(self, sha256: str) -> None: ...

    def iter_digests(self) -> Iterator[str]: ...

    def modified_at(self, sha256: str) -> datetime:
        """When the blob was stored (UTC); ``BlobNotFound`` if absent. ``lorry gc`` keeps
        unreferenced blobs younger than its grace period."""
        ...

    def check(self) -> None:
        """Raise ``StorageUnavailable`` unless the store can be read and written."""
        ...

    def presigned_url(self, sha256: str, expires_s: int = 3600) -> str | None: ...
