"""The Xet xorb format as Lorry reads it while a xorb streams in: chunks cut from pieces of
any size (a header or a chunk split anywhere), a xorb cut short refused at its end, and
every compression scheme undone (the grouping checked against a plain-bytes reference).
The same code behind the live routes: ``test_xet_refusals``; with hf_xet: ``test_xet_push``.
"""

from __future__ import annotations

import os

import lz4.frame
import pytest

from registry.errors import InvalidInput
from registry.services.xet_format import (
    CHUNK_HEADER_BYTES,
    XORB_FOOTER_IDENT,
    ChunkSplitter,
    decompress,
)


def _grouped(data: bytes) -> bytes:
    """ByteGrouping4 as hf_xet applies it: the bytes at positions 0 mod 4, then 1 mod 4, ..."""
    return b"".join(data[k::4] for k in range(4))


def _packed(data: bytes, scheme: int) -> bytes:
    stored = {0: data, 1: lz4.frame.compress(data), 2: lz4.frame.compress(_grouped(data))}[scheme]
    size, length = len(data).to_bytes(3, "little"), len(stored).to_bytes(3, "little")
    return bytes([0]) + length + bytes([scheme]) + size + stored


CHUNKS = [(b"lorry " * 7, 1), (os.urandom(1), 0), (bytes(range(256)) * 3 + b"xyz", 2)]
XORB = b"".join(_packed(data, scheme) for data, scheme in CHUNKS)
FOOTER = XORB_FOOTER_IDENT + b"\x01" + os.urandom(40)


def _read(pieces: list[bytes]) -> list[bytes]:
    """The decompressed chunks of a xorb fed as ``pieces``; ``finish`` checked."""
    splitter = ChunkSplitter()
    chunks = [
        bytes(decompress(chunk.scheme, chunk.data, chunk.size))
        for piece in pieces
        for chunk in splitter.feed(piece)
    ]
    splitter.finish()
    return chunks


def test_chunks_split_across_pieces_at_every_offset_are_read_whole() -> None:
    expected = [data for data, _ in CHUNKS]
    body = XORB + FOOTER
    for cut in range(len(body) + 1):
        assert _read([body[:cut], body[cut:]]) == expected, cut
    # every split of the first header into three pieces, and one byte at a time
    for first in range(CHUNK_HEADER_BYTES + 1):
        for second in range(first, CHUNK_HEADER_BYTES + 2):
            assert _read([body[:first], body[first:second], body[second:]]) == expected
    assert _read([body[i : i + 1] for i in range(len(body))]) == expected
    assert _read([XORB]) == expected  # no footer


def test_a_xorb_cut_short_is_refused_at_its_end() -> None:
    boundaries = {0}
    for data, scheme in CHUNKS:
        boundaries.add(max(boundaries) + len(_packed(data, scheme)))
    starts = sorted(boundaries)
    for cut in range(1, len(XORB)):
        if cut in boundaries:
            assert len(_read([XORB[:cut]])) == starts.index(cut)
            continue
        chunk_start = max(start for start in starts if start < cut)
        inside_header = cut - chunk_start < CHUNK_HEADER_BYTES
        message = "inside a chunk header" if inside_header else "inside a chunk$"
        with pytest.raises(InvalidInput, match=message):
            _read([XORB[:cut], b""])


def test_a_chunk_header_of_another_version_or_too_large_is_refused() -> None:
    with pytest.raises(InvalidInput, match="version 1"):
        list(ChunkSplitter().feed(b"\x01" + XORB[1:]))
    huge = bytes([0]) + (10).to_bytes(3, "little") + bytes([0]) + (2**23).to_bytes(3, "little")
    with pytest.raises(InvalidInput, match="larger than"):
        list(ChunkSplitter().feed(huge + bytes(10)))


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 65_536, 65_539, 131_071])
def test_decompress_undoes_lz4_and_byte_grouping(size: int) -> None:
    data = os.urandom(size // 2) + bytes(size - size // 2)
    for scheme in (0, 1, 2):
        header_and_stored = _packed(data, scheme)
        stored = memoryview(header_and_stored)[CHUNK_HEADER_BYTES:]
        assert bytes(decompress(scheme, stored, size)) == data


def test_decompress_refuses_what_does_not_fit() -> None:
    stored = lz4.frame.compress(b"abcd" * 10)
    with pytest.raises(InvalidInput, match="decompresses to 40 bytes, not the 41"):
        decompress(1, stored, 41)
    with pytest.raises(InvalidInput, match="does not decompress"):
        decompress(2, stored[:-6] + b"garbage", 40)
    with pytest.raises(InvalidInput, match="scheme 3"):
        decompress(3, stored, 40)
