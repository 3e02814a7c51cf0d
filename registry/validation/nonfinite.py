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


def _width(dtype: str) -> int:
    return np.dtype(_EXPONENT_MASKS[dtype][0]).itemsize if dtype in _EXPONENT_MASKS else 1


def find_nonfinite_tensors(
    read: Callable[[str, int, int], bytes],
    read_range: RangeReader,
    sha256: str,
    tensors: Mapping[str, TensorInfo],
) -> list[str]:
    """Names of the floating-point tensors that hold a NaN or an infinity, sorted.

    The data section is read once, front to back, in the store's chunks (the tensors tile
    it, as ``read_safetensors_header`` checked): one ranged read however many tensors
    there are, not one per tensor.
    """
    header_length = int.from_bytes(read_exact(read, sha256, 0, 8, what="safetensors"), "little")
    data_start = 8 + header_length
    ordered = sorted(
        (info.start, info.end, name) for name, info in tensors.items() if info.end > info.start
    )
    if not ordered:
        return []
    found: list[str] = []
    index, offset, carry = 0, ordered[0][0], b""
    for chunk in read_range(sha256, data_start + ordered[0][0], data_start + ordered[-1][1]):
        view, at = memoryview(chunk), 0
        while at < len(view) and index < len(ordered):
            start, end, name = ordered[index]
            take = min(len(view) - at, end - offset)
            dtype = tensors[name].dtype
            if scannable(dtype) and (not found or found[-1] != name):
                data = carry + bytes(view[at : at + take])
                usable = len(data) - len(data) % _width(dtype)
                if usable and _chunk_nonfinite(dtype, data[:usable]):
                    found.append(name)
                carry = data[usable:]
            at += take
            offset += take
            if offset == end:
                index, carry = index + 1, b""
                if index < len(ordered):
                    offset = ordered[index][0]
    return sorted(found)


def adapter_nonfinite_tensors(
    entries: Sequence[ManifestEntry],
    read: Callable[[str, int, int], bytes],
    read_range: RangeReader,
    settings: Settings,
    tensors: Mapping[str, TensorInfo] | None = None,
) -> list[str]:
    """``find_nonfinite_tensors`` of a validated adapter's ``adapter_model.safetensors``;
    ``tensors``: its header as validation parsed it (else it is read and parsed here)."""
    weights = next(entry for entry in entries if entry.path == ADAPTER_WEIGHTS)
    if tensors is not None:
        return find_nonfinite_tensors(read, read_range, weights.sha256, tensors)
    tensors = read_safetensors_header(
        read,
        weights.sha256,
        weights.size,
        max_header_bytes=settings.max_safetensors_header_bytes,
        name=ADAPTER_WEIGHTS,
    )
    return find_nonfinite_tensors(read, read_range, weights.sha256, tensors)
