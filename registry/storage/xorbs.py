"""Where verified Xet xorbs are kept between their upload and the shard that uses them.

hf_xet uploads a file as xorbs (``POST .../xorbs/...``), then a shard that lists the
file's chunks (``POST .../shards``); behind a load balancer the two may reach different
``lorry serve`` replicas. So the kept xorbs live where every replica sees them: beside
the blobs, under ``xet/<ns>/<name>/`` of the blob store on S3 (``S3Xorbs``), or under
``LORRY_HOME/xet/<ns>/<name>/`` with the local blob directory (``LocalXorbs``: one
server per blob directory). Garbage collection lists only ``blobs/``, so it never
touches them; ``sweep`` removes those no shard used for the keep time.

Each xorb is two entries: ``<hash>.chunks`` (its chunks, decompressed, end to end) and
``<hash>.idx`` (per chunk: offset, size). The chunks are written first and the index
last, so an index always has its chunks: ``index`` answering is what "kept" means.
A xorb is verified while it streams into a staging file under ``LORRY_HOME/xet``
(``staging_path``), then ``keep`` moves it (local) or uploads it (S3).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from registry.config import Settings
from registry.errors import StorageUnavailable
from registry.storage.base import BlobStore
from registry.storage.s3 import S3BlobStore

__all__ = ["LocalXorbs", "S3Xorbs", "XorbStore", "open_xorb_store"]

CHUNKS = ".chunks"
INDEX = ".idx"
STAGED_KEEP_S = 3600
"""A staging file older than this is what a killed upload left."""
READ_BYTES = 4 * 1024 * 1024
MAX_INDEX_BYTES = 64 * 1024 * 1024


class XorbStore(Protocol):
    location: str

    def staging_path(self, namespace: str, name: str, xorb: str) -> Path:
        """A new local file to verify the xorb into, before ``keep``."""
        ...

    def keep(self, namespace: str, name: str, xorb: str, staged: Path, index: bytes) -> bool:
        """Keep the verified xorb (``staged`` is consumed); whether it is new."""
        ...

    def index(self, namespace: str, name: str, xorb: str) -> bytes | None:
        """The kept xorb's index; ``None`` if it is not kept."""
        ...

    def read(
        self, namespace: str, name: str, xorb: str, start: int, length: int
    ) -> Iterator[bytes]:
        """``length`` bytes of the kept xorb's chunks from ``start``, in pieces."""
        ...

    def touch(self, namespace: str, name: str, xorb: str) -> None:
        """Mark the xorb used now (a shard referred to it): kept another keep time."""
        ...

    def sweep(self, namespace: str, name: str, keep_s: float) -> int:
        """Remove the repository's xorbs unused for ``keep_s`` and stale staging files;
        how many xorbs."""
        ...


def _sweep_staged(directory: Path) -> None:
    if not directory.is_dir():
        return
    for staged in directory.glob(".*"):  # what a killed upload left half-written
        try:
            if staged.stat().st_mtime < time.time() - STAGED_KEEP_S:
                staged.unlink()
        except FileNotFoundError:
            continue


class _Staging:
    """Staging files under ``<root>/<ns>/<name>/.<hash>.chunks.<random>``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def directory(self, namespace: str, name: str) -> Path:
        return self.root / namespace / name

    def staging_path(self, namespace: str, name: str, xorb: str) -> Path:
        directory = self.directory(namespace, name)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(
                f"could not create the Xet staging directory: {exc.strerror}"
            ) from exc
        return directory / f".{xorb}{CHUNKS}.{secrets.token_hex(8)}"


class LocalXorbs(_Staging):
    """Kept xorbs on this server's disk, beside their staging files (a rename keeps one)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.location = str(root)

    def chunks_path(self, namespace: str, name: str, xorb: str) -> Path:
        return self.directory(namespace, name) / f"{xorb}{CHUNKS}"

    def keep(self, namespace: str, name: str, xorb: str, staged: Path, index: bytes) -> bool:
        target = self.chunks_path(namespace, name, xorb)
        try:
            if target.exists():
                return False
            index_path = target.with_suffix(INDEX)
            staged_index = staged.with_name(staged.name + INDEX)
            staged_index.write_bytes(index)
            os.replace(staged_index, index_path)  # the index first: kept chunks have one
            os.replace(staged, target)
            return True
        finally:
            staged.unlink(missing_ok=True)

    def index(self, namespace: str, name: str, xorb: str) -> bytes | None:
        try:
            return self.chunks_path(namespace, name, xorb).with_suffix(INDEX).read_bytes()
        except FileNotFoundError:
            return None

    def read(
        self, namespace: str, name: str, xorb: str, start: int, length: int
    ) -> Iterator[bytes]:
        with self.chunks_path(namespace, name, xorb).open("rb") as handle:
            handle.seek(start)
            while length > 0:
                data = handle.read(min(length, READ_BYTES))
                if not data:
                    return
                length -= len(data)
                yield data

    def touch(self, namespace: str, name: str, xorb: str) -> None:
        self.chunks_path(namespace, name, xorb).touch()

    def sweep(self, namespace: str, name: str, keep_s: float) -> int:
        directory = self.directory(namespace, name)
        _sweep_staged(directory)
        if not directory.is_dir():
            return 0
        cutoff = time.time() - keep_s
        removed = 0
        for chunks in directory.glob(f"*{CHUNKS}"):
            try:
                if chunks.stat().st_mtime < cutoff:
                    chunks.unlink()
                    chunks.with_suffix(INDEX).unlink(missing_ok=True)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


class S3Xorbs(_Staging):
    """Kept xorbs in the blob store's bucket under ``xet/<ns>/<name>/``, which every
    replica reads; staging files on this server's disk until they are uploaded."""

    def __init__(self, staging_root: Path, store: S3BlobStore) -> None:
        super().__init__(staging_root)
        self.store = store
        self.location = f"{store!r} xet/"

    @staticmethod
    def _key(namespace: str, name: str, xorb: str, suffix: str) -> str:
        return f"xet/{namespace}/{name}/{xorb}{suffix}"

    def keep(self, namespace: str, name: str, xorb: str, staged: Path, index: bytes) -> bool:
        try:
            if self.index(namespace, name, xorb) is not None:
                return False
            self.store.put_object_file(self._key(namespace, name, xorb, CHUNKS), staged)
            # the index last: an index that answers always has its chunks
            self.store.put_object(self._key(namespace, name, xorb, INDEX), index)
            return True
        finally:
            staged.unlink(missing_ok=True)

    def index(self, namespace: str, name: str, xorb: str) -> bytes | None:
        return self.store.read_object_if_any(
            self._key(namespace, name, xorb, INDEX), MAX_INDEX_BYTES
        )

    def read(
        self, namespace: str, name: str, xorb: str, start: int, length: int
    ) -> Iterator[bytes]:
        if length <= 0:
            return iter(())
        return self.store.read_object_range(self._key(namespace, name, xorb, CHUNKS), start, length)

    def touch(self, namespace: str, name: str, xorb: str) -> None:
        key = self._key(namespace, name, xorb, INDEX)
        index = self.store.read_object_if_any(key, MAX_INDEX_BYTES)
        if index is not None:
            self.store.put_object(key, index)  # a rewrite renews its time

    def sweep(self, namespace: str, name: str, keep_s: float) -> int:
        _sweep_staged(self.directory(namespace, name))
        now = time.time()
        times = dict(self.store.object_times(f"xet/{namespace}/{name}/"))
        removed = 0
        for key, written in times.items():
            age = now - written.timestamp()
            if key.endswith(INDEX) and age > keep_s:
                self.store.remove_object(key)  # the index first: then no shard can use it
                self.store.remove_object(key[: -len(INDEX)] + CHUNKS)
                removed += 1
            elif key.endswith(CHUNKS) and key[: -len(CHUNKS)] + INDEX not in times:
                if age > STAGED_KEEP_S:  # chunks whose upload died before their index
                    self.store.remove_object(key)
        return removed


def open_xorb_store(settings: Settings, store: BlobStore) -> XorbStore:
    """Beside the blobs when they are on S3 (every replica sees them); else on this
    server's disk."""
    root = settings.home / "xet"
    if isinstance(store, S3BlobStore):
        return S3Xorbs(root, store)
    return LocalXorbs(root)
