"""Blob uploads: stream to a temp file while hashing, verify, then hand to the store."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from registry.config import Settings
from registry.errors import (
    BlobNotFound,
    DigestMismatch,
    InvalidReference,
    StorageUnavailable,
    TooLarge,
)
from registry.schemas import BlobInfo
from registry.storage.base import BlobStore

_SHA256 = re.compile(r"[0-9a-f]{64}")
_BATCH_BYTES = 8 * 1024 * 1024
"""Received chunks are gathered to this size before one thread hop writes and hashes them."""
_BUFFERS = 3


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


class _Sink:
    """A temp file and a running sha256, fed one buffer at a time from worker threads:
    ``hash`` and ``write`` of the same buffer run in parallel (both release the GIL)."""

    def __init__(self, directory: Path, keep: bool) -> None:
        self.hasher = hashlib.sha256()
        self.size = 0
        self.path: Path | None = None
        self._fd: int | None = None
        if keep:
            directory.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=directory, prefix="upload-", suffix=".part")
            self._fd, self.path = fd, Path(name)

    def hash(self, data: memoryview) -> None:
        self.hasher.update(data)
        self.size += len(data)

    def write(self, data: memoryview) -> None:
        if self._fd is None:
            return
        view = data
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            raise StorageUnavailable(
                f"could not spool the upload under {self.path}: {exc.strerror}; "
                "check that the data directory is writable and has free space"
            ) from exc

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        self.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


async def _consume(
    sink: _Sink,
    filled: MemoryObjectReceiveStream[tuple[bytearray, int]],
    free: MemoryObjectSendStream[bytearray],
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
    previous ones: a pipeline with no allocation per chunk."""
    free_send, free_receive = anyio.create_memory_object_stream[bytearray](_BUFFERS)
    filled_send, filled_receive = anyio.create_memory_object_stream[tuple[bytearray, int]](_BUFFERS)
    for _ in range(_BUFFERS):
        free_send.send_nowait(bytearray(_BATCH_BYTES))
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
    sink = _Sink(settings.tmp_dir, keep=not exists)
    try:
        try:
            await _pump(sink, chunks, limit)
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        sink.close()
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
