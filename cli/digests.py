"""sha256 of files being written, in large buffers, off the receiving thread (files on
disk: ``composer.fileio.sha256_file``)."""

from __future__ import annotations

import hashlib
import mmap
import os
import queue
import threading
from collections.abc import Callable

from composer.fileio import set_direct, write_direct_head

__all__ = ["HashingWriter"]

WRITE_BATCH = 8 * 1024 * 1024
WRITE_PIECE = 64 * 1024
"""Bytes per buffered ``write`` call, as the kernel's own file copy (splice) uses: larger
writes make Linux fill the page cache with larger folios, several times slower per byte
when free memory is fragmented or cold (bench/README-transfer.md)."""


class _Batch:
    """A filled buffer on its way through both workers; recycled when both are done."""

    def __init__(self, buffer: mmap.mmap, length: int) -> None:
        self.buffer = buffer
        self.length = length
        self.users = 2


class HashingWriter:
    """Writes bytes to a file descriptor and hashes them, in two worker threads.

    The caller keeps receiving from the network while one worker hashes and the other
    writes the previous batches: ``hashlib`` and ``os.write`` release the GIL on large
    buffers, so all three overlap. Received chunks are copied once into reusable
    ``WRITE_BATCH``-byte buffers, and at most two batches wait per worker, so memory
    stays bounded whatever the file size.

    A regular file is written with O_DIRECT where its filesystem allows it: the bytes go
    from the (page-aligned) batches to the disk without filling the page cache, which
    costs the kernel a copy and, for every new page, an allocation (0.25-2.6 CPU seconds
    per GiB on the development VM; O_DIRECT: 0.04). The last, unaligned bytes go through
    the page cache, and so does everything when O_DIRECT is refused.
    """

    def __init__(self, fd: int) -> None:
        self.size = 0
        self._fd = fd
        self._direct = set_direct(fd, True)
        self._hasher = hashlib.sha256()
        self._buffer = mmap.mmap(-1, WRITE_BATCH)
        self._used = 0
        self._hash_queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        self._write_queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        self._free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._work, args=(queue_, step), name=f"lorry-{name}")
            for queue_, step, name in (
                (self._hash_queue, self._hash, "hasher"),
                (self._write_queue, self._write, "writer"),
            )
        ]
        for thread in self._threads:
            thread.start()

    def _work(self, source: queue.Queue[_Batch | None], step: Callable[[memoryview], None]) -> None:
        while (batch := source.get()) is not None:
            if self._error is None:
                try:
                    with memoryview(batch.buffer) as whole, whole[: batch.length] as view:
                        step(view)
                except BaseException as exc:  # re-raised in the caller's thread
                    self._error = exc
            with self._lock:
                batch.users -= 1
                done = batch.users == 0
            if done:
                self._free.put(batch.buffer)

    def _hash(self, view: memoryview) -> None:
        self._hasher.update(view)

    def _write(self, view: memoryview) -> None:
        if self._direct:
            view, self._direct = write_direct_head(self._fd, view)
        while view:
            view = view[os.write(self._fd, view[:WRITE_PIECE]) :]

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _flush(self) -> None:
        if self._used:
            batch = _Batch(self._buffer, self._used)
            self._hash_queue.put(batch)
            self._write_queue.put(batch)
            try:
                self._buffer = self._free.get_nowait()
            except queue.Empty:
                self._buffer = mmap.mmap(-1, WRITE_BATCH)
            self._used = 0

    def write(self, data: bytes) -> None:
        self._check()
        self.size += len(data)
        view = memoryview(data)
        while view:
            take = min(len(view), WRITE_BATCH - self._used)
            self._buffer[self._used : self._used + take] = view[:take]
            self._used += take
            view = view[take:]
            if self._used == WRITE_BATCH:
                self._flush()

    def _stop(self) -> None:
        self._hash_queue.put(None)
        self._write_queue.put(None)
        for thread in self._threads:
            thread.join()

    def close(self) -> str:
        """Flush, stop the workers and return the sha256 hex of everything written."""
        self._flush()
        self._stop()
        self._check()
        return self._hasher.hexdigest()

    def abort(self) -> None:
        """Stop the workers without raising; for error paths."""
        if any(thread.is_alive() for thread in self._threads):
            self._error = self._error or RuntimeError("aborted")
            self._stop()
