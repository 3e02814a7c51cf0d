"""Receiving LFS uploads at their signed URLs: one ``PUT`` (basic) or parts + completion.

A basic upload is exactly a blob upload (``blobs.receive_blob``). A multipart
upload spools its parts into one preallocated file under ``<tmp>/lfs/``, each at
its offset, through the same buffered pipeline; a part that arrives in order
(huggingface_hub sends a file's parts one after the other) is hashed on its way
in, so completion only hashes what arrived out of order (or what a restarted
server did not see), then stores the file if it hashes to the oid. Each received
part leaves a marker file, so completion checks every part on any process.
Spools older than twice the URL lifetime are swept when new uploads start.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from math import ceil
from pathlib import Path
from typing import Any

import anyio.to_thread

from composer.fileio import preallocate
from registry.config import Settings
from registry.errors import DigestMismatch, InvalidInput, StorageUnavailable
from registry.schemas.lfs import LfsCompletion
from registry.schemas.repos import BlobInfo
from registry.services import blobs
from registry.services.upload_urls import UploadGrant
from registry.storage.base import CHUNK_SIZE, BlobStore

_SPOOL_DIR = "lfs"


@dataclass
class _Progress:
    """How far the in-order hash of one multipart upload has got (this process only)."""

    hasher: Any = field(default_factory=hashlib.sha256)
    hashed: int = 0
    busy: bool = False


_progress: dict[str, _Progress] = {}
_lock = threading.Lock()


def _spool_dir(settings: Settings) -> Path:
    return settings.tmp_dir / _SPOOL_DIR


def _spool(settings: Settings, grant: UploadGrant) -> Path:
    return _spool_dir(settings) / f"{grant.upload_id}.part"


def _markers(settings: Settings, grant: UploadGrant) -> Path:
    return _spool_dir(settings) / f"{grant.upload_id}.parts"


def part_etag(number: int, length: int) -> str:
    return f'"part-{number}-{length}"'


async def receive_basic(
    store: BlobStore,
    settings: Settings,
    grant: UploadGrant,
    chunks: AsyncIterator[bytes],
    content_length: int | None,
) -> tuple[BlobInfo, bool]:
    if grant.part_size:
        raise InvalidInput("this is a multipart upload URL: PUT its parts, then POST complete")
    if content_length is not None and content_length != grant.size:
        raise DigestMismatch(
            f"the body has {content_length} bytes but the upload was announced with "
            f"{grant.size}; upload the file it announced"
        )
    return await blobs.receive_blob(store, settings, grant.oid, chunks, content_length)


def _part_span(grant: UploadGrant, number: int) -> tuple[int, int]:
    count = ceil(grant.size / grant.part_size) if grant.part_size else 0
    if not 1 <= number <= count:
        raise InvalidInput(
            f"part {number} does not exist: this upload has parts 1 to {count}"
            if count
            else "this is a single-part upload URL: PUT the whole file to it"
        )
    offset = (number - 1) * grant.part_size
    return offset, min(grant.part_size, grant.size - offset)


def _open_spool(settings: Settings, grant: UploadGrant) -> Path:
    path = _spool(settings, grant)
    try:
        _markers(settings, grant).mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size == 0:
                preallocate(fd, grant.size)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageUnavailable(
            f"could not create the upload spool {path}: {exc.strerror}; check that the data "
            "directory is writable and has free space"
        ) from exc
    return path


def _take_hasher(upload_id: str, offset: int) -> _Progress | None:
    with _lock:
        progress = _progress.setdefault(upload_id, _Progress())
        if progress.busy or progress.hashed != offset:
            return None
        progress.busy = True
        return progress


def _release_hasher(upload_id: str, progress: _Progress | None, length: int, ok: bool) -> None:
    if progress is None:
        return
    with _lock:
        progress.busy = False
        if ok:
            progress.hashed += length
        else:  # the hasher saw part of a failed part: start over from the file
            _progress[upload_id] = _Progress()


async def receive_part(
    settings: Settings,
    grant: UploadGrant,
    number: int,
    chunks: AsyncIterator[bytes],
    content_length: int | None,
) -> str:
    """Spool part ``number``; returns its ETag, which the completion must quote."""
    offset, length = _part_span(grant, number)
    if content_length is not None and content_length != length:
        raise DigestMismatch(
            f"part {number} must have {length} bytes, the body has {content_length}; "
            "send the parts the batch answer's chunk_size defines"
        )
    path = await anyio.to_thread.run_sync(_open_spool, settings, grant)
    progress = _take_hasher(grant.upload_id, offset)
    ok = False
    try:
        hasher = progress.hasher if progress is not None else None
        await blobs.receive_part(path, offset, length, chunks, hasher)
        ok = True
    finally:
        _release_hasher(grant.upload_id, progress, length, ok)
    (_markers(settings, grant) / str(number)).touch()
    return part_etag(number, length)


async def complete(
    store: BlobStore, settings: Settings, grant: UploadGrant, completion: LfsCompletion
) -> BlobInfo:
    """Check that every part arrived as acknowledged, hash what was not hashed on the
    way in, and store the file under its oid; the spool is removed either way."""
    if completion.oid != grant.oid:
        raise InvalidInput(f"this upload URL is for oid {grant.oid}, not {completion.oid}")
    count = ceil(grant.size / grant.part_size) if grant.part_size else 0
    expected = {n: part_etag(n, _part_span(grant, n)[1]) for n in range(1, count + 1)}
    given = {part.partNumber: part.etag for part in completion.parts}
    if given != expected:
        raise InvalidInput(
            f"the completion lists parts {sorted(given)} with ETags that do not match the "
            f"{count} parts of this upload; upload every part, then list each with its ETag"
        )
    try:
        return await anyio.to_thread.run_sync(_finish, store, settings, grant, count)
    finally:
        with _lock:
            _progress.pop(grant.upload_id, None)
        await anyio.to_thread.run_sync(_remove_spool, settings, grant)


def _finish(store: BlobStore, settings: Settings, grant: UploadGrant, count: int) -> BlobInfo:
    markers = _markers(settings, grant)
    missing = [n for n in range(1, count + 1) if not (markers / str(n)).is_file()]
    if missing:
        raise InvalidInput(f"parts {missing} were not received; upload them, then complete")
    with _lock:
        progress = _progress.get(grant.upload_id) or _Progress()
    path = _spool(settings, grant)
    _hash_rest(path, progress, grant.size)
    actual = progress.hasher.hexdigest()
    if actual != grant.oid:
        raise DigestMismatch(
            f"the uploaded parts hash to sha256:{actual}, not sha256:{grant.oid}; a part was "
            "incomplete or the file changed while it was sent, so upload it again"
        )
    store.put_file(path, grant.oid)
    return BlobInfo(sha256=grant.oid, size=grant.size)


def _hash_rest(path: Path, progress: _Progress, size: int) -> None:
    with open(path, "rb") as handle:
        handle.seek(progress.hashed)
        while progress.hashed < size:
            chunk = handle.read(min(8 * CHUNK_SIZE, size - progress.hashed))
            if not chunk:
                break
            progress.hasher.update(chunk)
            progress.hashed += len(chunk)


def _remove_spool(settings: Settings, grant: UploadGrant) -> None:
    _spool(settings, grant).unlink(missing_ok=True)
    shutil.rmtree(_markers(settings, grant), ignore_errors=True)


def sweep_stale_spools(settings: Settings) -> None:
    """Remove multipart spools untouched for twice the upload URL lifetime (abandoned)."""
    directory = _spool_dir(settings)
    if not directory.is_dir():
        return
    cutoff = time.time() - 2 * settings.upload_url_ttl_s
    for entry in directory.iterdir():
        try:
            if entry.stat().st_mtime >= cutoff:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        except FileNotFoundError:
            continue
        with _lock:
            _progress.pop(entry.name.split(".", 1)[0], None)
