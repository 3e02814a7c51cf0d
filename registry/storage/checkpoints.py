"""Where signed audit checkpoints go: a directory, the blob store, a webhook.

``LORRY_AUDIT_CHECKPOINT_TARGETS`` lists them, comma-separated:

- ``file:///srv/lorry-checkpoints``: a directory (another disk, an NFS or
  WORM mount); files are created once and never rewritten;
- ``blobstore:``: the blob store of ``LORRY_BLOB_URL`` under ``checkpoints/``
  (garbage collection lists only ``blobs/``, so it never touches them); an S3
  bucket with object lock or versioning makes them hard to delete;
- ``https://witness.example/lorry`` (or ``http://``): each note is POSTed as
  ``text/plain``; a 2xx answer is a delivery. Write-only: verification reads
  checkpoints from the other kinds, or from the receiver's copies offline.

Checkpoints are named ``<YYYY-MM-DD>/<HHMMSS.ffffff>Z-e<event id>.note`` so
that names sort by time; ``newest`` lists the newest days first and never
lists a whole history.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

import httpx

from registry.config import Settings
from registry.errors import LorryError, StorageUnavailable
from registry.storage.base import BlobStore
from registry.storage.local import LocalBlobStore
from registry.storage.s3 import S3BlobStore

PREFIX = "checkpoints/"
MAX_CHECKPOINT_BYTES = 16 * 1024
WEBHOOK_TIMEOUT_S = 10.0
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NAME = re.compile(r"^\d{6}\.\d{6}Z-e\d+\.note$")


class InvalidCheckpointTarget(LorryError):
    code = "invalid_checkpoint_target"
    status_code = 500


class CheckpointTarget(Protocol):
    """One place checkpoints go. ``write`` never replaces an existing checkpoint and raises
    ``StorageUnavailable`` when the place cannot take it."""

    location: str
    readable: bool

    def write(self, name: str, note: bytes) -> str:
        """Store ``note`` as ``name``; returns where it went."""
        ...

    def newest(self, limit: int) -> list[tuple[str, bytes]]:
        """At most ``limit`` checkpoints, newest first: (where, first 16 KiB)."""
        ...


def _newest(names_of: Iterator[tuple[str, list[str]]], limit: int) -> list[str]:
    found: list[str] = []
    for day, names in names_of:
        found += [f"{day}/{name}" for name in sorted(names, reverse=True) if _NAME.match(name)]
        if len(found) >= limit:
            break
    return found[:limit]


class DirectoryCheckpoints:
    readable = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def write(self, name: str, note: bytes) -> str:
        target = self.root / name
        staged = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(staged, "wb") as handle:
                handle.write(note)
                handle.flush()
                os.fsync(handle.fileno())
            # A hard link never replaces an existing file: the directory only grows.
            os.link(staged, target)
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            raise StorageUnavailable(
                f"could not write audit checkpoint {name} under {self.root}: {exc.strerror}; "
                "check LORRY_AUDIT_CHECKPOINT_TARGETS"
            ) from exc
        finally:
            staged.unlink(missing_ok=True)
        return str(target)

    def newest(self, limit: int) -> list[tuple[str, bytes]]:
        try:
            days = sorted(
                (p.name for p in self.root.iterdir() if p.is_dir() and _DAY.match(p.name)),
                reverse=True,
            )

            def listing() -> Iterator[tuple[str, list[str]]]:
                for day in days:
                    yield day, [p.name for p in (self.root / day).iterdir()]

            found = _newest(listing(), limit)
            result = []
            for name in found:
                with open(self.root / name, "rb") as handle:
                    result.append((str(self.root / name), handle.read(MAX_CHECKPOINT_BYTES + 1)))
            return result
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageUnavailable(
                f"could not read audit checkpoints under {self.root}: {exc.strerror}"
            ) from exc


class S3Checkpoints:
    readable = True

    def __init__(self, store: S3BlobStore) -> None:
        self.store = store
        where = f"{store.bucket}/{store.prefix}" if store.prefix else store.bucket
        self.location = f"s3://{where}/{PREFIX.rstrip('/')}"

    def write(self, name: str, note: bytes) -> str:
        self.store.put_object(PREFIX + name, note)
        return f"{self.location}/{name}"

    def newest(self, limit: int) -> list[tuple[str, bytes]]:
        days = sorted(
            (
                key[len(PREFIX) :].rstrip("/")
                for key in self.store.list_keys(PREFIX, recursive=False)
                if key.endswith("/") and _DAY.match(key[len(PREFIX) :].rstrip("/"))
            ),
            reverse=True,
        )

        def listing() -> Iterator[tuple[str, list[str]]]:
            for day in days:
                keys = self.store.list_keys(f"{PREFIX}{day}/", recursive=True)
                yield day, [key.rsplit("/", 1)[-1] for key in keys]

        return [
            (f"{self.location}/{name}", self.store.read_object(PREFIX + name, MAX_CHECKPOINT_BYTES))
            for name in _newest(listing(), limit)
        ]


class WebhookCheckpoints:
    readable = False

    def __init__(self, url: str) -> None:
        self.location = url

    def write(self, name: str, note: bytes) -> str:
        try:
            response = httpx.post(
                self.location,
                content=note,
                headers={"Content-Type": "text/plain; charset=utf-8", "X-Lorry-Checkpoint": name},
                timeout=WEBHOOK_TIMEOUT_S,
            )
        except httpx.HTTPError as exc:
            raise StorageUnavailable(
                f"could not deliver audit checkpoint {name} to {self.location}: {exc}"
            ) from exc
        if not response.is_success:
            raise StorageUnavailable(
                f"the audit checkpoint webhook {self.location} answered "
                f"{response.status_code} to checkpoint {name}"
            )
        return self.location

    def newest(self, limit: int) -> list[tuple[str, bytes]]:
        return []


def open_checkpoint_targets(settings: Settings, store: BlobStore | None) -> list[CheckpointTarget]:
    """The targets of ``LORRY_AUDIT_CHECKPOINT_TARGETS`` (none when it is empty)."""
    targets: list[CheckpointTarget] = []
    for spec in (part.strip() for part in settings.audit_checkpoint_targets.split(",")):
        if not spec:
            continue
        if spec.startswith("file://") and len(spec) > len("file://"):
            targets.append(DirectoryCheckpoints(Path(unquote(spec[len("file://") :]))))
        elif spec == "blobstore:":
            if isinstance(store, LocalBlobStore):
                targets.append(DirectoryCheckpoints(store.root / PREFIX.rstrip("/")))
            elif isinstance(store, S3BlobStore):
                targets.append(S3Checkpoints(store))
            else:
                raise InvalidCheckpointTarget("the blob store cannot hold audit checkpoints")
        elif spec.startswith(("http://", "https://")):
            targets.append(WebhookCheckpoints(spec))
        else:
            raise InvalidCheckpointTarget(
                f"audit checkpoint target {spec!r} is not file:///DIR, blobstore: or an "
                "http(s):// URL; fix LORRY_AUDIT_CHECKPOINT_TARGETS"
            )
    return targets
