"""sha256 of files being read or written, in large buffers, off the receiving thread."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["READ_BUFFER", "HashingWriter", "sha256_file"]

READ_BUFFER = 8 * 1024 * 1024
WRITE_BATCH = 8 * 1024 * 1024


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """sha256 hex of a file, read in large buffers (hashlib releases the GIL on them)."""
    digest = hashlib.sha256()
    buffer = bytearray(READ_BUFFER)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(view):
            digest.update(view[:n])
            if on_bytes is not None:
                on_bytes(n)
    return digest.hexdigest()


class HashingWriter:
    """Writes bytes to a file descriptor and hashes them, in a worker thread.

    The caller keeps receiving from the network while the worker hashes and writes
    the previous batch: ``hashlib`` and ``os.write`` release the GIL on large buffers,
    so the two overlap on two cores. Received chunks are copied once into reusable
    ``WRITE_BATCH``-byte buffers, and at most two batches wait in the queue, so memory
    stays bounded whatever the file size.
    """

    def __init__(self, fd: int) -> None:
        self.size = 0
        self._fd = fd
        self._hasher = hashlib.sha256()
        self._buffer = bytearray(WRITE_BATCH)
        self._used = 0
        self._queue: queue.Queue[tuple[bytes | bytearray, int] | None] = queue.Queue(maxsize=2)
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="lorry-hashing-writer")
        self._thread.start()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            data, length = item
            if self._error is None:
                try:
                    with memoryview(data) as whole, whole[:length] as view:
                        self._hasher.update(view)
                        written = 0
                        while written < length:
                            written += os.write(self._fd, view[written:])
                except BaseException as exc:  # re-raised in the caller's thread
                    self._error = exc
            if isinstance(data, bytearray) and len(data) == WRITE_BATCH:
                self._free.put(data)

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _flush(self) -> None:
        if self._used:
            self._queue.put((self._buffer, self._used))
            try:
                self._buffer = self._free.get_nowait()
            except queue.Empty:
                self._buffer = bytearray(WRITE_BATCH)
            self._used = 0

    def write(self, data: bytes) -> None:
        self._check()
        length = len(data)
        self.size += length
        if self._used + length > WRITE_BATCH:
            self._flush()
        if length >= WRITE_BATCH:
            self._queue.put((data, length))
            return
        self._buffer[self._used : self._used + length] = data
        self._used += length

    def close(self) -> str:
        """Flush, stop the worker and return the sha256 hex of everything written."""
        self._flush()
        self._queue.put(None)
        self._thread.join()
        self._check()
        return self._hasher.hexdigest()

    def abort(self) -> None:
        """Stop the worker without raising; for error paths."""
        if self._thread.is_alive():
            self._error = self._error or RuntimeError("aborted")
            self._queue.put(None)
            self._thread.join()
