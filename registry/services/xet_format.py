"""The Xet storage formats that ``hf_xet`` uploads: xorbs, shards and their hashes.

Read from the client's source (huggingface/xet-core, ``xet_core_structures``):

- **Chunk hash**: BLAKE3 keyed with ``DATA_KEY`` over the chunk's bytes. A hash is shown
  (URLs, hash text) as four little-endian u64 words, each printed as 16 hex digits.
- **Xorb hash**: the root of an aggregated tree over ``(chunk hash, size)``: a level's
  entries are cut into groups of 2 to 9 (a group ends after an entry, from the third on,
  whose last word is 0 mod 4), each group's lines ``"<hex> : <size>\\n"`` are hashed with
  BLAKE3 keyed with ``INTERNAL_NODE_KEY``, until one entry is left.
- **Xorb**: chunks, each an 8-byte header (version 0, compressed length: 3 bytes LE,
  scheme, uncompressed length: 3 bytes LE) and its bytes; scheme 0 none, 1 LZ4 frame,
  2 LZ4 frame of the bytes regrouped by position mod 4 ("ByteGrouping4"). A footer that
  starts with ``XETBLOB`` may follow; it repeats what the chunks say and is not read.
- **Shard** (as uploaded: header, file section, xorb section, maybe a footer): the file
  section holds 48-byte entries: a file header (file hash, flags, number of terms), its
  terms (xorb hash, flags, unpacked bytes, first chunk, end chunk), then, by flag, one
  verification entry per term and a metadata entry whose first 32 bytes are the sha256;
  a header whose hash is all ``ff`` ends the section.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TypeAlias

import blake3
import lz4.frame
import numpy as np

from registry.errors import InvalidInput

DATA_KEY = bytes(
    [102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28]
    + [157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41]
)
INTERNAL_NODE_KEY = bytes(
    [1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230]
    + [93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63]
)
SHARD_TAG = b"HFRepoMetaData\x00" + bytes(
    [85, 105, 103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169]
)
XORB_FOOTER_IDENT = b"XETBLOB"
CHUNK_HEADER_BYTES = 8
MAX_CHUNK_BYTES = 1024 * 1024
"""Larger than any chunk hf_xet makes (128 KiB); bounds what one chunk may cost."""
ENTRY_BYTES = 48
_BOOKEND = b"\xff" * 32
_WITH_VERIFICATION = 1 << 31
_WITH_METADATA_EXT = 1 << 30
_MAX_GROUP = 9

Buffer: TypeAlias = bytes | bytearray | memoryview


def hash_hex(digest: bytes) -> str:
    """A 32-byte hash as Xet writes it: four little-endian u64 words in hex."""
    return "".join(digest[i : i + 8][::-1].hex() for i in range(0, 32, 8))


def hash_from_hex(text: str) -> bytes:
    """The inverse of ``hash_hex``; refuses anything but 64 hex digits."""
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise InvalidInput(f"{text!r} is not a Xet hash (64 hex digits)")
    raw = bytes.fromhex(text)
    return b"".join(raw[i : i + 8][::-1] for i in range(0, 32, 8))


def chunk_hash(data: Buffer) -> bytes:
    return blake3.blake3(data, key=DATA_KEY).digest()


def _cut(entries: list[tuple[bytes, int]], start: int) -> int:
    """Where the group that starts at ``start`` ends (exclusive)."""
    left = len(entries) - start
    if left <= 2:
        return len(entries)
    end = start + min(_MAX_GROUP, left)
    for index in range(start + 2, end):
        if entries[index][0][24] % 4 == 0:
            return index + 1
    return end


def xorb_hash(entries: list[tuple[bytes, int]]) -> bytes:
    """The aggregated hash of ``(chunk hash, size)`` entries (``aggregated_node_hash``)."""
    if not entries:
        return bytes(32)
    level = entries
    while len(level) > 1:
        merged: list[tuple[bytes, int]] = []
        start = 0
        while start < len(level):
            end = _cut(level, start)
            group = level[start:end]
            text = "".join(f"{hash_hex(h)} : {size}\n" for h, size in group).encode("ascii")
            digest = blake3.blake3(text, key=INTERNAL_NODE_KEY).digest()
            merged.append((digest, sum(size for _, size in group)))
            start = end
        level = merged
    return level[0][0]


def _regroup4(grouped: bytes) -> memoryview:
    """Undo ByteGrouping4: byte ``i`` of group ``k`` is byte ``4 i + k`` of the chunk.
    (Four strided numpy copies: measured faster here than a transpose or shifts.)"""
    n = len(grouped)
    split, rem = divmod(n, 4)
    source = np.frombuffer(grouped, dtype=np.uint8)
    out = np.empty(n, dtype=np.uint8)
    offset = 0
    for k in range(4):
        size = split + (1 if rem > k else 0)
        out[k::4] = source[offset : offset + size]
        offset += size
    return out.data


def decompress(scheme: int, data: Buffer, size: int) -> Buffer:
    """A chunk's bytes from its stored form; refuses a scheme or size that does not fit."""
    try:
        if scheme == 0:
            plain: Buffer = data
        elif scheme == 1:
            plain = lz4.frame.decompress(data)
        elif scheme == 2:
            plain = _regroup4(lz4.frame.decompress(data))
        else:
            raise InvalidInput(f"xorb chunk compression scheme {scheme} is not one of 0, 1, 2")
    except RuntimeError as exc:  # lz4 reports corrupt frames as RuntimeError
        raise InvalidInput(f"a xorb chunk does not decompress: {exc}") from None
    if len(plain) != size:
        raise InvalidInput(
            f"a xorb chunk decompresses to {len(plain)} bytes, not the {size} its header says"
        )
    return plain


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as a xorb holds it: compression ``scheme``, ``data`` (compressed), and the
    ``size`` its header says it has once decompressed."""

    scheme: int
    data: Buffer
    size: int


def _chunk_header(header: Buffer) -> tuple[int, int, int] | None:
    """Scheme, stored and decompressed size of an 8-byte chunk header; ``None`` for the
    start of the footer."""
    if bytes(header[: len(XORB_FOOTER_IDENT)]) == XORB_FOOTER_IDENT:
        return None
    if header[0] != 0:
        raise InvalidInput(f"xorb chunk header version {header[0]} is not 0")
    stored = int.from_bytes(header[1:4], "little")
    size = int.from_bytes(header[5:8], "little")
    if size > MAX_CHUNK_BYTES or stored > 2 * MAX_CHUNK_BYTES:
        raise InvalidInput(f"a xorb chunk of {size} bytes is larger than {MAX_CHUNK_BYTES}")
    return header[4], stored, size


class ChunkSplitter:
    """Cuts a xorb, fed in pieces of any size as it arrives, into its chunks.

    ``feed`` yields each chunk that the bytes so far complete (a view into the piece fed,
    or, for a chunk that straddles pieces, into a copy of its own bytes; consume it before
    feeding more); ``finish`` refuses a xorb that ends inside a chunk. Whatever follows
    the footer's ``XETBLOB`` is not read.
    """

    def __init__(self) -> None:
        self._tail = bytearray()
        self._in_footer = False

    def feed(self, data: Buffer) -> Iterator[StoredChunk]:
        view = memoryview(data).cast("B")
        if self._tail and not self._in_footer:
            chunk, view = self._complete_tail(view)
            if chunk is None:
                return
            yield chunk
        while view and not self._in_footer:
            if len(view) < CHUNK_HEADER_BYTES:
                self._tail = bytearray(view)  # the start of a chunk that the next piece ends
                return
            header = _chunk_header(view[:CHUNK_HEADER_BYTES])
            if header is None:
                self._in_footer = True
                return
            scheme, stored, size = header
            end = CHUNK_HEADER_BYTES + stored
            if len(view) < end:
                self._tail = bytearray(view)
                return
            yield StoredChunk(scheme, view[CHUNK_HEADER_BYTES:end], size)
            view = view[end:]

    def _complete_tail(self, view: memoryview) -> tuple[StoredChunk | None, memoryview]:
        """The straddling chunk, completed from the start of ``view``, and what follows."""
        if len(self._tail) < CHUNK_HEADER_BYTES:
            taken = CHUNK_HEADER_BYTES - len(self._tail)
            self._tail += view[:taken]
            view = view[taken:]
            if len(self._tail) < CHUNK_HEADER_BYTES:
                return None, view
        header = _chunk_header(self._tail[:CHUNK_HEADER_BYTES])
        if header is None:
            self._in_footer = True
            return None, view
        scheme, stored, size = header
        taken = CHUNK_HEADER_BYTES + stored - len(self._tail)
        self._tail += view[:taken]
        if len(self._tail) < CHUNK_HEADER_BYTES + stored:
            return None, view[taken:]
        chunk = StoredChunk(scheme, memoryview(self._tail)[CHUNK_HEADER_BYTES:], size)
        self._tail = bytearray()  # a new one: the chunk's view keeps the old one alive
        return chunk, view[taken:]

    def finish(self) -> None:
        """Refuse a xorb whose last chunk was cut short."""
        if self._in_footer or not self._tail:
            return
        if self._tail.startswith(XORB_FOOTER_IDENT):
            return
        if len(self._tail) < CHUNK_HEADER_BYTES:
            raise InvalidInput("the xorb ends inside a chunk header")
        raise InvalidInput("the xorb ends inside a chunk")


@dataclass(frozen=True)
class Term:
    """Chunks ``start`` to ``end`` (exclusive) of xorb ``xorb``, ``size`` bytes unpacked."""

    xorb: str
    size: int
    start: int
    end: int


@dataclass(frozen=True)
class FileEntry:
    file_hash: str
    terms: tuple[Term, ...]
    sha256: str | None
    """The sha256 the client computed, if the shard says it (stored as four u64 words, like
    every hash of the format, so its usual hex is ``hash_hex`` of the stored bytes)."""

    @property
    def size(self) -> int:
        return sum(term.size for term in self.terms)


def _entry(handle: IO[bytes]) -> bytes:
    data = handle.read(ENTRY_BYTES)
    if len(data) < ENTRY_BYTES:
        raise InvalidInput("the shard ends inside its file section; upload it again")
    return data


def read_shard_files(handle: IO[bytes], max_terms: int) -> list[FileEntry]:
    """The file section of an uploaded shard (at most ``max_terms`` terms in all)."""
    head = handle.read(48)
    if len(head) < 48 or head[:32] != SHARD_TAG:
        raise InvalidInput("this is not a Xet shard (its header tag is wrong)")
    version = struct.unpack_from("<Q", head, 32)[0]
    if version != 2:
        raise InvalidInput(f"Xet shard version {version} is not supported (2 is)")
    files: list[FileEntry] = []
    total = 0
    while True:
        header = _entry(handle)
        if header[:32] == _BOOKEND:
            return files
        flags, count = struct.unpack_from("<II", header, 32)
        total += count
        if total > max_terms:
            raise InvalidInput(f"the shard names more than {max_terms} file terms")
        terms = []
        for _ in range(count):
            data = _entry(handle)
            _, size, start, end = struct.unpack_from("<IIII", data, 32)
            if end <= start:
                raise InvalidInput(f"a shard term names chunks {start} to {end}: none")
            terms.append(Term(hash_hex(data[:32]), size, start, end))
        if flags & _WITH_VERIFICATION:
            for _ in range(count):
                _entry(handle)
        sha256 = hash_hex(_entry(handle)[:32]) if flags & _WITH_METADATA_EXT else None
        files.append(FileEntry(hash_hex(header[:32]), tuple(terms), sha256))
