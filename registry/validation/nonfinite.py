"""Find tensors that hold NaN or infinity, streaming a safetensors blob one tensor at a time.

A version is not refused for them (a checkpoint may legitimately be broken and
still worth keeping as evidence); their names are recorded in the version's
metadata as ``nonfinite_tensors`` so that deployments can refuse it.

The check looks at the exponent bits of the raw values, so it needs no
framework and works for dtypes numpy lacks (bfloat16, float8): all exponent
bits set means infinity or NaN (for ``F8_E4M3``, which has no infinity, only
the NaN patterns ``0x7f`` / ``0xff``). Integer and bool tensors are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from registry.config import Settings
from registry.validation.adapter import ADAPTER_WEIGHTS
from registry.validation.manifest import ManifestEntry
from registry.validation.safetensors_header import (
    TensorInfo,
    read_exact,
    read_safetensors_header,
)

RangeReader = Callable[[str, int, int], Iterator[bytes]]
"""``(sha256, start, end) -> chunks`` of the blob's bytes ``[start, end)``."""

_EXPONENT_MASKS: dict[str, tuple[type[np.unsignedinteger], int]] = {
    "F64": (np.uint64, 0x7FF0000000000000),
    "F32": (np.uint32, 0x7F800000),
    "F16": (np.uint16, 0x7C00),
    "BF16": (np.uint16, 0x7F80),
    "F8_E5M2": (np.uint8, 0x7C),
}


def _chunk_nonfinite(dtype: str, data: bytes) -> bool:
    if dtype == "F8_E4M3":
        values = np.frombuffer(data, dtype=np.uint8)
        return bool(np.any((values & 0x7F) == 0x7F))
    kind, mask = _EXPONENT_MASKS[dtype]
    values = np.frombuffer(data, dtype=np.dtype(kind).newbyteorder("<"))
    return bool(np.any((values & mask) == mask))


def scannable(dtype: str) -> bool:
    return dtype in _EXPONENT_MASKS or dtype == "F8_E4M3"


def _tensor_nonfinite(
    read_range: RangeReader, sha256: str, dtype: str, start: int, end: int
) -> bool:
    width = np.dtype(_EXPONENT_MASKS[dtype][0]).itemsize if dtype in _EXPONENT_MASKS else 1
    carry = b""
    for chunk in read_range(sha256, start, end):
        data = carry + chunk
        usable = len(data) - len(data) % width
        if usable and _chunk_nonfinite(dtype, data[:usable]):
            return True
        carry = data[usable:]
    return False


def find_nonfinite_tensors(
    read: Callable[[str, int, int], bytes],
    read_range: RangeReader,
    sha256: str,
    tensors: Mapping[str, TensorInfo],
) -> list[str]:
    """Names of the floating-point tensors that hold a NaN or an infinity, sorted."""
    header_length = int.from_bytes(read_exact(read, sha256, 0, 8, what="safetensors"), "little")
    data_start = 8 + header_length
    found = [
        name
        for name, info in sorted(tensors.items(), key=lambda item: item[1].start)
        if scannable(info.dtype)
        and info.end > info.start
        and _tensor_nonfinite(
            read_range, sha256, info.dtype, data_start + info.start, data_start + info.end
        )
    ]
    return sorted(found)


def adapter_nonfinite_tensors(
    entries: Sequence[ManifestEntry],
    read: Callable[[str, int, int], bytes],
    read_range: RangeReader,
    settings: Settings,
) -> list[str]:
    """``find_nonfinite_tensors`` of a validated adapter's ``adapter_model.safetensors``."""
    weights = next(entry for entry in entries if entry.path == ADAPTER_WEIGHTS)
    tensors = read_safetensors_header(
        read,
        weights.sha256,
        weights.size,
        max_header_bytes=settings.max_safetensors_header_bytes,
        name=ADAPTER_WEIGHTS,
    )
    return find_nonfinite_tensors(read, read_range, weights.sha256, tensors)
