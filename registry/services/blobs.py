"""Blob uploads: stream to a temp file while hashing, verify, then hand to the store."""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from composer.fileio import DIRECT_ALIGNMENT, set_direct, write_direct_head
from registry.config import Settings
from registry.errors import (
    BlobNotFound,
    DigestMismatch,
    InvalidReference,
    StorageUnavailable,
    TooLarge,
)
from registry.schemas.repos import BlobInfo
from registry.storage.base import BlobStore
from registry.storage.scratch import ScratchLock, new_file

_SHA256 = re.compile(r"[0-9a-f]{64}")
_Hasher = Any
"""A ``hashlib`` sha256 object (its class is private to hashlib)."""
_BATCH_BYTES = 8 * 1024 * 1024
"""Received chunks are gathered to this size before one thread hop writes and hashes them."""
_BUFFERS = 3
_WRITE_PIECE = 64 * 1024
"""Bytes per buffered ``write`` call, as the kernel's own file copy (splice) uses: larger
writes make Linux fill the page cache with larger folios, several times slower per byte
when free memory is fragmented or cold (bench/README-transfer.md)."""


def check_sha256(sha256: str) -> None:
    if not _SHA256.fullmatch(sha256):
        raise InvalidReference(
            f"invalid blob digest {sha256!r}: use the 64 lowercase hex characters of its sha256"
        )


def blob_size(store: BlobStore, sha256: str) -> int:
    check_sha256(sha256)
    try:
        return store.size(sha256)
    except BlobNotFound:
        raise BlobNotFound(f"blob sha256:{sha256} is not stored; upload it first") from None


def _too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"the file is larger than the server's limit of {limit} bytes per file "
        "(LORRY_MAX_FILE_BYTES)"
    )


def _new_spool(directory: Path) -> tuple[int, Path, ScratchLock]:
    """A locked ``upload-*.part`` spool file (``registry.storage.scratch``)."""
    try:
        return new_file(directory, "upload-", ".part")
    except OSError as exc:
        raise StorageUnavailable(
            f"could not create a spool file for the upload: {exc.strerror}; check that the "
            "data directory is writable and has free space"
        ) from exc


class _Sink:
    """A temp file and a running sha256, fed one buffer at a time from worker threads:
    ``hash`` and ``write`` of the same buffer run in parallel (both release the GIL).

    The file is written with O_DIRECT where the filesystem allows it: the bytes go from
    the (page-aligned, reused) batch buffers to the disk without filling the page cache,
    which costs the kernel a copy and, for every new page, an allocation (0.25-2.6 CPU
    seconds per GiB on the development VM; O_DIRECT: 0.04). The blob is read back once
    to validate it when a version is published. The last, unaligned bytes of an upload
    are written through the page cache.
    """

    def __init__(
        self,
        directory: Path,
        keep: bool,
        expected_size: int | None = None,
        hasher: _Hasher | None = None,
    ) -> None:
        self.hasher: _Hasher | None = hashlib.sha256() if hasher is None else hasher
        self.size = 0
        self.path: Path | None = None
        self._fd: int | None = None
        self._lock: ScratchLock | None = None
        self._direct = False
        if keep:
            self._fd, self.path, self._lock = _new_spool(directory)
            self._direct = set_direct(self._fd, True)
            if expected_size:
                self._preallocate(expected_size)

    def _preallocate(self, size: int) -> None:
        """Reserve the file's blocks up front: writes into allocated blocks cost the
        filesystem less (ext4: ~30% less kernel time), and a full disk fails now."""
        assert self._fd is not None and self.path is not None
        if not hasattr(os, "posix_fallocate"):  # macOS
            return
        try:
            os.posix_fallocate(self._fd, 0, size)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                self.discard()
                raise StorageUnavailable(
                    f"no space left on the server for an upload of {size} bytes; "
                    "free some space and upload it again"
                ) from exc

    @classmethod
    def into(cls, path: Path, offset: int, hasher: _Hasher | None) -> _Sink:
        """A sink writing into the existing file ``path`` from ``offset`` (one part of a
        multipart upload); ``hasher`` is fed when the part is the next one in order,
        ``None`` leaves the hashing to whoever reads the file back."""
        sink = cls(path.parent, keep=False)
        sink.hasher = hasher
        try:
            fd = os.open(path, os.O_WRONLY)
            os.lseek(fd, offset, os.SEEK_SET)
        except OSError as exc:
            raise StorageUnavailable(
                f"could not open the upload spool {path}: {exc.strerror}; upload it again"
            ) from exc
        sink._fd = fd
        sink._direct = offset % DIRECT_ALIGNMENT == 0 and set_direct(fd, True)
        return sink

    def hash(self, data: memoryview) -> None:
        if self.hasher is not None:
            self.hasher.update(data)
        self.size += len(data)

    def write(self, data: memoryview) -> None:
        """Append ``data``; with O_DIRECT it must start at a page boundary (the batch
        buffers do), else the write falls back to the page cache."""
        if self._fd is None:
            return
        view = data
        try:
            if self._direct:
                view = self._write_direct(view)
            while view:
                written = os.write(self._fd, view[:_WRITE_PIECE])
                view = view[written:]
        except OSError as exc:
            raise StorageUnavailable(
                f"could not spool the upload: {exc.strerror}; "
                "check that the data directory is writable and has free space"
            ) from exc

    def _write_direct(self, view: memoryview) -> memoryview:
        """Write the aligned head of ``view`` directly; return what is left for the page
        cache (then the file stays in buffered mode: only an upload's end is unaligned)."""
        assert self._fd is not None
        view, self._direct = write_direct_head(self._fd, view)
        return view

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        if self._lock is not None:
            self._lock.release()
            self._lock = None


async def _consume(
    sink: _Sink,
    filled: MemoryObjectReceiveStream[tuple[mmap.mmap, int]],
    free: MemoryObjectSendStream[mmap.mmap],
) -> None:
    async with filled:
        async for buffer, length in filled:
            view = memoryview(buffer)[:length]
            async with anyio.create_task_group() as group:
                group.start_soon(anyio.to_thread.run_sync, sink.hash, view)
                group.start_soon(anyio.to_thread.run_sync, sink.write, view)
            view.release()
            free.send_nowait(buffer)


async def _pump(sink: _Sink, chunks: AsyncIterator[bytes], limit: int) -> None:
    """Copy the body into a few reused buffers while worker threads hash and write the
    previous ones: a pipeline with no allocation per chunk. The buffers are anonymous
    memory maps, so that they start at a page boundary, as O_DIRECT writes need."""
    free_send, free_receive = anyio.create_memory_object_stream[mmap.mmap](_BUFFERS)
    filled_send, filled_receive = anyio.create_memory_object_stream[tuple[mmap.mmap, int]](_BUFFERS)
    for _ in range(_BUFFERS):
        free_send.send_nowait(mmap.mmap(-1, _BATCH_BYTES))
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_consume, sink, filled_receive, free_send)
            async with filled_send:
                received = 0
                buffer, used = await free_receive.receive(), 0
                async for chunk in chunks:
                    received += len(chunk)
                    if received > limit:
                        raise _too_large(limit)
                    view = memoryview(chunk)
                    while view:
                        take = min(len(view), _BATCH_BYTES - used)
                        buffer[used : used + take] = view[:take]
                        used += take
                        view = view[take:]
                        if used == _BATCH_BYTES:
                            await filled_send.send((buffer, used))
                            buffer, used = await free_receive.receive(), 0
                if used:
                    await filled_send.send((buffer, used))
    finally:
        free_send.close()
        free_receive.close()


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that stopped the pipeline, out of the task groups' wrapping."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def receive_blob(
    store: BlobStore,
    settings: Settings,
    sha256: str,
    chunks: AsyncIterator[bytes],
    content_length: int | None,
) -> tuple[BlobInfo, bool]:
    """Store the streamed bytes as blob ``sha256``; returns the blob and whether it is new.

    Nothing reaches the store unless the bytes hash to ``sha256``; the temp
    file is always removed. A blob that is already stored is hashed (to give
    the same answer to a wrong upload) but not written again.
    """
    check_sha256(sha256)
    limit = settings.max_file_bytes
    if content_length is not None and content_length > limit:
        raise _too_large(limit)
    exists = await anyio.to_thread.run_sync(store.exists, sha256)
    sink = _Sink(settings.tmp_dir, keep=not exists, expected_size=content_length)
    try:
        try:
            await _pump(sink, chunks, limit)
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        sink.close()
        assert sink.hasher is not None
        actual = sink.hasher.hexdigest()
        if actual != sha256:
            raise DigestMismatch(
                f"the uploaded bytes hash to sha256:{actual}, not sha256:{sha256} as the URL "
                "says; the upload was incomplete or the file changed while it was sent, so "
                "upload it again"
            )
        if content_length is not None and sink.size != content_length:
            raise DigestMismatch(
                f"received {sink.size} bytes but Content-Length said {content_length}; "
                "upload it again"
            )
        if sink.path is not None:
            await anyio.to_thread.run_sync(store.put_file, sink.path, sha256)
        return BlobInfo(sha256=sha256, size=sink.size), not exists
    finally:
        sink.discard()


async def receive_part(
    path: Path,
    offset: int,
    length: int,
    chunks: AsyncIterator[bytes],
    hasher: _Hasher | None,
) -> None:
    """Write exactly ``length`` streamed bytes into the spool file ``path`` at ``offset``,
    through the same buffered pipeline as ``receive_blob``; ``hasher`` (if given) is fed
    the bytes in order. A short or long body raises ``DigestMismatch``."""
    sink = _Sink.into(path, offset, hasher)
    try:
        try:
            try:
                await _pump(sink, chunks, length)
            except BaseExceptionGroup as group:
                raise _first_error(group) from None
        except TooLarge:
            raise DigestMismatch(
                f"this part carries more than the {length} bytes it should; upload it again"
            ) from None
        if sink.size != length:
            raise DigestMismatch(
                f"received {sink.size} bytes for a part of {length} bytes; upload it again"
            )
    finally:
        sink.close()
