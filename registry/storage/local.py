"""Blobs in a directory on local disk (the embedded default)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from registry.errors import BlobNotFound, StorageUnavailable
from registry.storage.base import CHUNK_SIZE, blob_key


class LocalBlobStore:
    """``<root>/blobs/sha256/<2 hex>/<sha256>``; writes are atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._staging = root / ".staging"

    def _path(self, sha256: str) -> Path:
        return self.root / blob_key(sha256)

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def size(self, sha256: str) -> int:
        try:
            return self._path(sha256).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"blob sha256:{sha256} is not in the store") from None

    def put_file(self, path: Path, sha256: str) -> None:
        target = self._path(sha256)
        if target.is_file():
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(path, target)
            except OSError:
                # Another filesystem: copy to a staging name beside the target, then rename.
                self._staging.mkdir(parents=True, exist_ok=True)
                staged = self._staging / f"{sha256}.{os.getpid()}"
                shutil.copyfile(path, staged)
                with open(staged, "rb") as handle:
                    os.fsync(handle.fileno())
                os.replace(staged, target)
        except OSError as exc:
            raise StorageUnavailable(
                f"could not write blob sha256:{sha256} to the blob store: {exc.strerror}; "
                "check that the data directory is writable and has free space"
            ) from exc

    def open_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self._path(sha256)
        if not path.is_file():
            raise BlobNotFound(f"blob sha256:{sha256} is not in the store")
        return self._stream(path, start, end)

    @staticmethod
    def _stream(path: Path, start: int, end: int | None) -> Iterator[bytes]:
        with open(path, "rb") as handle:
            handle.seek(start)
            remaining = None if end is None else max(0, end - start)
            while remaining is None or remaining > 0:
                size = CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining)
                chunk = handle.read(size)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def read_bytes(self, sha256: str, start: int, length: int) -> bytes:
        try:
            with open(self._path(sha256), "rb") as handle:
                handle.seek(start)
                return handle.read(length)
        except FileNotFoundError:
            raise BlobNotFound(f"blob sha256:{sha256} is not in the store") from None

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)

    def iter_digests(self) -> Iterator[str]:
        base = self.root / "blobs" / "sha256"
        if not base.is_dir():
            return
        for prefix in sorted(base.iterdir()):
            for blob in sorted(prefix.iterdir()):
                yield blob.name

    def modified_at(self, sha256: str) -> datetime:
        try:
            return datetime.fromtimestamp(self._path(sha256).stat().st_mtime, tz=UTC)
        except FileNotFoundError:
            raise BlobNotFound(f"blob sha256:{sha256} is not in the store") from None

    def check(self) -> None:
        probe = self.root / ".readyz"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise StorageUnavailable(
                f"the blob directory (LORRY_BLOB_URL, default LORRY_HOME/blobs) is not "
                f"writable: {exc.strerror}"
            ) from exc

    def presigned_url(self, sha256: str, expires_s: int = 3600) -> str | None:
        return None
