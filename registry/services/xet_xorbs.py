"""Xorbs received by the Xet upload path (``registry.services.xet``), verified as they
stream in and kept, decompressed, per repository.

A xorb's request body is cut into chunks while it arrives (``ChunkSplitter``): every
``BATCH_BYTES`` received, a worker thread decompresses and BLAKE3-hashes the chunks
those bytes complete and appends them to a staging file (``XorbStore.staging_path``).
At the end of the body the chunks' aggregated hash must equal the one in the URL; only
then is the xorb kept (``XorbStore.keep``). A refusal, a body cut short or a
client that goes away removes the staged file; one that a killed server leaves (a
``.``-name) is removed by ``sweep_xorbs`` after an hour.

Kept (``registry.storage.xorbs``: on this server's disk, or beside the blobs on S3 where
every replica reads them): ``<hash>.chunks`` (the chunks, decompressed, one after the
other: a file is rebuilt from them by plain reads) and ``<hash>.idx`` (per chunk: its
offset in the chunks file, its size, 0).
"""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread

from registry.errors import InvalidInput, TooLarge
from registry.services.xet_format import (
    ChunkSplitter,
    chunk_hash,
    decompress,
    hash_from_hex,
    hash_hex,
    xorb_hash,
)
from registry.storage.scratch import disk_errors
from registry.storage.xorbs import XorbStore

MAX_XORB_BYTES = 128 * 1024 * 1024
"""hf_xet makes xorbs of at most 64 MiB of chunks (and a footer)."""
BATCH_BYTES = 4 * 1024 * 1024
"""Received bytes handed to a worker thread at a time: large enough that the thread's
start and the event loop's wake-up cost little per byte, small enough that concurrent
xorbs (hf_xet sends several) keep both cores busy and memory stays low."""
INDEX = struct.Struct("<QII")


def read_index(
    xorbs: XorbStore, namespace: str, name: str, xorb: str
) -> list[tuple[int, int, int]]:
    """The index of a kept xorb: per chunk, its offset, its size and 0."""
    data = xorbs.index(namespace, name, xorb)
    if data is None:
        raise InvalidInput(
            f"the shard refers to xorb {xorb}, which was not uploaded to this repository; "
            "upload it (hf_xet does), then the shard"
        )
    return list(INDEX.iter_unpack(data))


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _StagedXorb:
    """A xorb's chunks, decompressed, written to a staged file as its body arrives."""

    def __init__(self, xorbs: XorbStore, namespace: str, name: str, hex_hash: str) -> None:
        self.hex_hash = hex_hash
        self.expected = hash_from_hex(hex_hash)
        self._xorbs, self._namespace, self._name = xorbs, namespace, name
        self.xorb = hash_hex(self.expected)
        self._splitter = ChunkSplitter()
        self._entries: list[tuple[bytes, int]] = []
        self._index = bytearray()
        self._offset = 0
        self.staged = xorbs.staging_path(namespace, name, self.xorb)
        with disk_errors("store a xorb"):
            self._fd: int | None = os.open(self.staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL)

    def feed(self, pieces: list[bytes]) -> None:
        """Decompress, hash and write the chunks that ``pieces`` complete (a worker
        thread; the pieces as received, not joined: only a chunk that straddles two of
        them is copied)."""
        assert self._fd is not None
        with disk_errors("store a xorb"):
            for piece in pieces:
                for chunk in self._splitter.feed(piece):
                    if self._offset + chunk.size > MAX_XORB_BYTES:
                        # compressed chunks could unpack to far more than the body's size
                        raise TooLarge(
                            f"a xorb's chunks unpack to more than {MAX_XORB_BYTES} bytes; "
                            "hf_xet packs at most 64 MiB into one"
                        )
                    plain = decompress(chunk.scheme, chunk.data, chunk.size)
                    self._entries.append((chunk_hash(plain), chunk.size))
                    self._index += INDEX.pack(self._offset, chunk.size, 0)
                    write_all(self._fd, plain)
                    self._offset += chunk.size

    def keep(self) -> bool:
        """Keep the chunks if they hash to the URL's hash; whether the xorb is new."""
        self._splitter.finish()
        if not self._entries:
            raise InvalidInput("the xorb holds no chunk")
        actual = xorb_hash(self._entries)
        if actual != self.expected:
            raise InvalidInput(
                f"the xorb's chunks hash to {hash_hex(actual)}, not {self.hex_hash} as its URL "
                "says; it was altered or cut short: upload it again"
            )
        self._close()
        with disk_errors("store a xorb"):
            return self._xorbs.keep(
                self._namespace, self._name, self.xorb, self.staged, bytes(self._index)
            )

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        """Remove what is staged (nothing once ``keep`` took it)."""
        self._close()
        self.staged.unlink(missing_ok=True)


async def receive_xorb(
    xorbs: XorbStore, namespace: str, name: str, hex_hash: str, body: AsyncIterator[bytes]
) -> bool:
    """Keep the streamed xorb's chunks, decompressed, if they hash to ``hex_hash``;
    whether the xorb is new. The body is verified while it arrives, ``BATCH_BYTES`` at a
    time in a worker thread; nothing is kept unless all of it is right."""
    staged = await anyio.to_thread.run_sync(_StagedXorb, xorbs, namespace, name, hex_hash)
    try:
        received = 0
        batch: list[bytes] = []
        batched = 0
        async for piece in body:
            received += len(piece)
            if received > MAX_XORB_BYTES:
                raise TooLarge(
                    f"a xorb is larger than {MAX_XORB_BYTES} bytes; hf_xet sends smaller ones"
                )
            batch.append(piece)
            batched += len(piece)
            if batched >= BATCH_BYTES:
                await anyio.to_thread.run_sync(staged.feed, batch)
                batch, batched = [], 0
        await anyio.to_thread.run_sync(staged.feed, batch)
        return await anyio.to_thread.run_sync(staged.keep)
    finally:
        with anyio.CancelScope(shield=True):  # also when the client went away
            await anyio.to_thread.run_sync(staged.discard)
