"""Writing one safetensors file tensor by tensor, with its header known in advance.

The ``safetensors`` package has no incremental writer, so ``ShardWriter`` writes the
(simple, documented) layout itself: an 8-byte little-endian header length, a JSON
header padded with spaces to 8 bytes, then the raw data.

Bytes are gathered in a few page-aligned staging buffers that callers compute into
directly (``reserve``/``commit``) and are written by one background thread. Where the
filesystem takes O_DIRECT, the file is written with it: the bytes go from the staging
buffers to the disk without filling the page cache, which costs the kernel a copy and,
for every new page, an allocation (0.25-2.6 CPU seconds per GiB on the development VM,
against 0.04 with O_DIRECT; bench/README-compose.md); the writing thread then mostly
waits for the disk instead of competing with the computation for a core. O_DIRECT
needs aligned lengths, so each buffer's unaligned tail moves to the next one, and the
file's last bytes go through the page cache.
"""

from __future__ import annotations

import errno
import json
import math
import mmap
import os
import struct
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from composer.fileio import DIRECT_ALIGNMENT, preallocate, set_direct

__all__ = ["DTYPES", "ShardWriter"]

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_STAGE_BYTES = 8 * 1024 * 1024
"""Size of a staging buffer (grown when a caller reserves more)."""
_STAGES = 3
"""Staging buffers: one being filled, the others queued for or being written."""
_WRITE_BYTES = 64 * 1024
"""Bytes per buffered ``write`` call, as the kernel's own file copy (splice) uses.
Larger writes make Linux fill the page cache with larger folios, which cost several
times more kernel time per byte when free memory is fragmented or cold: on the
development VM, 1 GiB in 1 MiB writes took 0.24-1.85 s of system time, in 64 KiB
writes 0.23-0.40 s in most runs."""


class _Stage:
    """A page-aligned buffer (an anonymous memory map), seen as bytes and as a tensor."""

    def __init__(self, size: int) -> None:
        self.map = mmap.mmap(-1, size)
        self.bytes = memoryview(self.map)
        self.tensor = torch.frombuffer(self.map, dtype=torch.uint8)
        self.pending: Future[None] | None = None

    @property
    def size(self) -> int:
        return len(self.bytes)


class ShardWriter:
    """Writes one safetensors file; ``entries`` (name, dtype, shape) in data order.

    Tensors are appended in that order: computed ones through ``reserve``/``commit``,
    copied ones through ``copy`` or ``append``. With ``overlap`` false and no O_DIRECT,
    writes run inline (a writer thread would compete with torch's threads for cores).
    """

    def __init__(
        self,
        path: Path,
        entries: list[tuple[str, str, tuple[int, ...]]],
        meta: dict[str, str],
        *,
        overlap: bool,
    ) -> None:
        header: dict[str, Any] = {}
        if meta:
            header["__metadata__"] = meta
        offset = 0
        self._sizes: dict[str, int] = {}
        for name, dtype, shape in entries:
            size = DTYPES[dtype].itemsize * math.prod(shape)
            header[name] = {
                "dtype": dtype,
                "shape": list(shape),
                "data_offsets": [offset, offset + size],
            }
            self._sizes[name] = size
            offset += size
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)
        self.total_size = offset
        self._order = [name for name, _, _ in entries]
        self._next = 0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            preallocate(self._fd, 8 + len(encoded) + offset)
        except BaseException:
            os.close(self._fd)
            raise
        self._direct = set_direct(self._fd, True)
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="lorry-shard-writer")
            if overlap or self._direct
            else None
        )
        self._stages = [_Stage(_STAGE_BYTES) for _ in range(_STAGES)]
        self._index = 0
        self._used = 0
        self._last: Future[None] | None = None
        self.append(memoryview(struct.pack("<Q", len(encoded)) + encoded))

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                self._finish()
            elif self._last is not None:
                self._last.exception()  # let the writer stop before closing its file
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            os.close(self._fd)

    def claim(self, name: str) -> int:
        """Check that ``name`` comes next (the header promised the order); its size."""
        if self._order[self._next] != name:
            raise RuntimeError(f"tensor {name} written out of order")
        self._next += 1
        return self._sizes[name]

    def reserve(self, nbytes: int) -> torch.Tensor:
        """``nbytes`` bytes (uint8) of staging to compute the next bytes into; the caller
        fills them and calls ``commit(nbytes)`` before any other call."""
        if self._used + nbytes > self._stages[self._index].size:
            self._rotate(nbytes)
        return self._stages[self._index].tensor[self._used : self._used + nbytes]

    def commit(self, nbytes: int) -> None:
        self._used += nbytes

    def append(self, data: memoryview) -> None:
        """Append a copy of ``data`` (bytes)."""
        data = data.cast("B")
        while data:
            stage = self._stages[self._index]
            if self._used == stage.size:
                self._rotate(0)
                continue
            take = min(len(data), stage.size - self._used)
            stage.bytes[self._used : self._used + take] = data[:take]
            self._used += take
            data = data[take:]

    def copy(self, source: int, offset: int, size: int) -> None:
        """Append ``size`` bytes of the file ``source`` (a descriptor) from ``offset``:
        in the kernel (``copy_file_range``) when writing through the page cache, else
        read straight into the staging buffers."""
        if not self._direct:
            self._rotate(0)
            self._last = self._submit(_copy_range, source, offset, size, self._fd)
            return
        while size:
            stage = self._stages[self._index]
            if self._used == stage.size:
                self._rotate(0)
                continue
            take = min(size, stage.size - self._used)
            got = os.preadv(source, [stage.bytes[self._used : self._used + take]], offset)
            if got <= 0:
                raise RuntimeError("a base shard ended before its header said it would")
            self._used, offset, size = self._used + got, offset + got, size - got

    def _submit(self, function: Callable[..., None], *args: Any) -> Future[None] | None:
        if self._pool is None:
            function(*args)
            return None
        return self._pool.submit(function, *args)

    def _rotate(self, need: int) -> None:
        """Send the current buffer (its aligned head, with O_DIRECT) to the writer and
        continue in the next one, with the unaligned tail carried over."""
        current = self._stages[self._index]
        head = self._used - self._used % DIRECT_ALIGNMENT if self._direct else self._used
        tail = self._used - head
        following = (self._index + 1) % len(self._stages)
        stage = self._stages[following]
        if stage.pending is not None:
            stage.pending.result()
            stage.pending = None
        if stage.size < tail + need:
            stage = self._stages[following] = _Stage(max(tail + need, 2 * stage.size))
        if tail:
            stage.bytes[:tail] = current.bytes[head : self._used]
        if head:
            direct = self._direct
            current.pending = self._submit(_write, self._fd, current.bytes[:head], direct)
            self._last = current.pending or self._last
        self._index, self._used = following, tail

    def _finish(self) -> None:
        """Write what is staged, wait for every write, and check that all was written."""
        self._rotate(0)
        if self._last is not None:
            self._last.result()
        if self._used:  # the unaligned end of an O_DIRECT file
            set_direct(self._fd, False)
            _write(self._fd, self._stages[self._index].bytes[: self._used], False)
        if self._next != len(self._order):
            raise RuntimeError(f"{len(self._order) - self._next} tensors were not written")


def _write(fd: int, view: memoryview, direct: bool) -> None:
    if direct:
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError as error:
            if error.errno != errno.EINVAL:  # EINVAL: alignment refused after all
                raise
            set_direct(fd, False)
    while view:
        view = view[os.write(fd, view[:_WRITE_BYTES]) :]


def _copy_range(source: int, offset: int, size: int, fd: int) -> None:
    """Copy in the kernel where it can (``copy_file_range``), else through a buffer."""
    if hasattr(os, "copy_file_range"):
        try:
            while size:
                copied = os.copy_file_range(source, fd, size, offset)
                if copied == 0:
                    break
                offset, size = offset + copied, size - copied
        except OSError:
            pass
    while size:
        block = os.pread(source, min(size, _WRITE_BYTES), offset)
        if not block:
            raise RuntimeError("a base shard ended before its header said it would")
        _write(fd, memoryview(block), False)
        offset, size = offset + len(block), size - len(block)
