"""Upload validation: safetensors headers read through the blob store, bounded and strict."""

from __future__ import annotations

import random
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from safetensors import deserialize, safe_open

from registry.errors import InvalidInput, InvalidSafetensors
from registry.validation import DTYPE_BITS
from tests.registry.uploads import parse_header, safetensors_blob


def test_read_safetensors_header_matches_safetensors_library(lora_adapter_dir: Path) -> None:
    path = lora_adapter_dir / "adapter_model.safetensors"
    tensors = parse_header(path.read_bytes())
    with safe_open(path, "pt") as handle:
        assert sorted(tensors) == sorted(handle.keys())
        for name, info in tensors.items():
            assert list(info.shape) == handle.get_slice(name).get_shape()
            assert info.dtype == handle.get_slice(name).get_dtype()
            assert info.end - info.start == info.numel * DTYPE_BITS[info.dtype] // 8


def test_read_safetensors_header_accepts_metadata_and_empty_tensors() -> None:
    header = {
        "__metadata__": {"format": "pt"},
        "empty": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]},
        "x": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
    }
    tensors = parse_header(safetensors_blob(header, b"\0" * 4))
    assert tensors["x"].shape == (2,)
    assert tensors["empty"].numel == 0
    assert "__metadata__" not in tensors


def test_read_safetensors_header_rejects_header_length_beyond_file() -> None:
    blob = safetensors_blob({}, length=1000)
    with pytest.raises(InvalidSafetensors, match=r"claims 1000 bytes but the file is only"):
        parse_header(blob)


def test_read_safetensors_header_rejects_header_over_limit() -> None:
    blob = safetensors_blob({"x": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\0")
    with pytest.raises(InvalidSafetensors, match=r"over the limit of 16 bytes"):
        parse_header(blob, limit=16)


def test_read_safetensors_header_rejects_tiny_file() -> None:
    with pytest.raises(InvalidSafetensors, match="too short"):
        parse_header(b"\x01\x02")


def test_read_safetensors_header_rejects_blob_shorter_than_its_manifest_size() -> None:
    blob = safetensors_blob({"x": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 4)
    truncated = blob[:20]
    with pytest.raises(InvalidSafetensors, match="truncated"):
        parse_header(truncated, size=len(blob))


def test_read_safetensors_header_rejects_missing_tensor_data() -> None:
    header = {"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    with pytest.raises(InvalidSafetensors, match=r"cover 16 bytes but the data section is 8"):
        parse_header(safetensors_blob(header, b"\0" * 8))


def test_read_safetensors_header_rejects_trailing_bytes() -> None:
    header = {"x": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}
    with pytest.raises(InvalidSafetensors, match=r"cover 2 bytes but the data section is 3"):
        parse_header(safetensors_blob(header, b"\0" * 3))


@pytest.mark.parametrize(
    "raw", [b"{not json", b"\xff\xfe{}", b'{"a": NaN}', b'{"x": 1, "x": 2}', b"[1, 2]"]
)
def test_read_safetensors_header_rejects_garbage_header(raw: bytes) -> None:
    with pytest.raises(InvalidSafetensors, match="safetensors header"):
        parse_header(safetensors_blob(raw))


def test_read_safetensors_header_rejects_overlapping_offsets() -> None:
    header = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
    }
    with pytest.raises(InvalidSafetensors, match=r"tensor 'b' starts at offset 4.*overlaps"):
        parse_header(safetensors_blob(header, b"\0" * 12))


def test_read_safetensors_header_rejects_gap_between_tensors() -> None:
    header = {
        "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
        "b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]},
    }
    with pytest.raises(InvalidSafetensors, match=r"tensor 'b'.*leaves a gap"):
        parse_header(safetensors_blob(header, b"\0" * 6))


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}, "needs 12 bytes"),
        ({"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}, "unknown dtype 'Q4'"),
        ({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}, "non-negative integers"),
        ({"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}, "non-negative integers"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}, "begin <= end"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0]}, "begin <= end"),
        ({"dtype": "F32", "shape": [2]}, "exactly the keys"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_read_safetensors_header_rejects_bad_tensor_entry(entry: Any, problem: str) -> None:
    with pytest.raises(InvalidSafetensors, match=re.escape(problem)):
        parse_header(safetensors_blob({"w": entry}, b"\0" * 8))


def test_read_safetensors_header_rejects_non_string_metadata() -> None:
    with pytest.raises(InvalidSafetensors, match="__metadata__"):
        parse_header(safetensors_blob({"__metadata__": {"step": 3}}))


def test_read_safetensors_header_survives_random_mutations(lora_adapter_dir: Path) -> None:
    """Every mutated file either parses or is refused with an InvalidInput, never anything
    else, and the verdict agrees with the safetensors library's own parser."""
    original = (lora_adapter_dir / "adapter_model.safetensors").read_bytes()
    header_end = 8 + struct.unpack("<Q", original[:8])[0]
    rng = random.Random(20261124)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(200):
        blob = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            blob[rng.randrange(header_end)] = rng.randrange(256)
        if rng.random() < 0.1:
            blob = blob[: rng.randrange(len(blob))]
        try:
            parse_header(bytes(blob), limit=1 << 16)
            parsed = True
        except InvalidInput:
            parsed = False
        try:
            deserialize(bytes(blob))
            library_parsed = True
        except Exception:
            library_parsed = False
        assert parsed == library_parsed
        outcomes["parsed" if parsed else "refused"] += 1
    assert outcomes["refused"] > 100
    assert outcomes["parsed"] > 0
