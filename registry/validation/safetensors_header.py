"""A safe reader of safetensors headers: bounded, JSON only, never a pickle.

The file format: 8 bytes little-endian ``N``, ``N`` bytes of a UTF-8 JSON
object, then the data section. Each tensor entry is ``{"dtype", "shape",
"data_offsets": [begin, end]}`` with offsets relative to the data section. The
checks mirror those of the safetensors library itself: the entries, sorted by
offset, tile the data section exactly (no gap, no overlap, nothing left over)
and each one's byte length is ``numel * bits / 8`` of its dtype.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from registry.errors import InvalidSafetensors
from registry.validation.manifest import BlobReader

__all__ = ["DTYPE_BITS", "TensorInfo", "read_exact", "read_safetensors_header"]

DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "F8_E8M0": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}
"""Bits per element of every safetensors dtype (sub-byte types pack several per byte)."""

_SAVE_HINT = "save it again with `safetensors.torch.save_file` or PEFT's `save_pretrained`"


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors file; ``start``/``end`` are offsets in the data section."""

    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def read_exact(read: BlobReader, sha256: str, start: int, length: int, *, what: str) -> bytes:
    """Read exactly ``length`` bytes; a blob that ends early raises ``InvalidSafetensors``."""
    parts: list[bytes] = []
    got = 0
    while got < length:
        chunk = read(sha256, start + got, length - got)
        if not chunk:
            raise InvalidSafetensors(
                f"{what} is truncated: expected {length} bytes at offset {start}, the file "
                f"ends after {got}; push the complete file",
                sha256=sha256,
            )
        parts.append(chunk[: length - got])
        got += len(parts[-1])
    return b"".join(parts)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)  # built in C; the loop below runs only to name a duplicate
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise ValueError(f"the key {key!r} appears twice")
            seen.add(key)
    return result


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_tensor(name: str, entry: object, what: str) -> TensorInfo:
    # The common case in a few type checks (a header may hold 10^5 entries); any doubt
    # falls through to the checks below, which name what is wrong.
    if type(entry) is dict and len(entry) == 3:
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        bits = DTYPE_BITS.get(dtype) if type(dtype) is str else None
        if bits and type(shape) is list and type(offsets) is list and len(offsets) == 2:
            start, end = offsets
            if (
                type(start) is int
                and type(end) is int
                and 0 <= start <= end
                and all(type(d) is int and d >= 0 for d in shape)
                and math.prod(shape) * bits == (end - start) * 8
            ):
                return TensorInfo(dtype=str(dtype), shape=tuple(shape), start=start, end=end)
    return _check_tensor(name, entry, what)


def _check_tensor(name: str, entry: object, what: str) -> TensorInfo:
    if not isinstance(entry, dict):
        raise InvalidSafetensors(f"{what}: tensor {name!r} is not a JSON object; {_SAVE_HINT}")
    if set(entry) != {"dtype", "shape", "data_offsets"}:
        raise InvalidSafetensors(
            f"{what}: tensor {name!r} must have exactly the keys dtype, shape and "
            f"data_offsets, it has {sorted(entry)}; {_SAVE_HINT}"
        )
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise InvalidSafetensors(
            f"{what}: tensor {name!r} has the unknown dtype {dtype!r}; known dtypes are "
            f"{', '.join(sorted(DTYPE_BITS))}"
        )
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise InvalidSafetensors(
            f"{what}: tensor {name!r} has the shape {shape!r}; a shape is a list of "
            f"non-negative integers"
        )
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(_is_int(o) and o >= 0 for o in offsets)
        and offsets[0] <= offsets[1]
    ):
        raise InvalidSafetensors(
            f"{what}: tensor {name!r} has the data_offsets {offsets!r}; expected "
            f"[begin, end] with 0 <= begin <= end"
        )
    info = TensorInfo(dtype=dtype, shape=tuple(shape), start=offsets[0], end=offsets[1])
    bits = info.numel * DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != info.end - info.start:
        raise InvalidSafetensors(
            f"{what}: tensor {name!r} ({dtype}, shape {list(shape)}) needs "
            f"{bits / 8:g} bytes but its data_offsets span {info.end - info.start}; "
            f"{_SAVE_HINT}"
        )
    return info


def read_safetensors_header(
    read: BlobReader,
    sha256: str,
    size: int,
    *,
    max_header_bytes: int,
    name: str = "adapter_model.safetensors",
) -> dict[str, TensorInfo]:
    """Parse and check the header of a safetensors blob of ``size`` bytes.

    Returns the tensors by name (``__metadata__`` is checked, not returned). Raises
    ``InvalidSafetensors`` for anything the safetensors library would refuse, and for a
    header larger than ``max_header_bytes``. Reads only the 8-byte prefix and the header.
    """
    if size < 8:
        raise InvalidSafetensors(
            f"{name} is {size} bytes, too short for a safetensors file (at least 8); {_SAVE_HINT}"
        )
    header_length = int.from_bytes(read_exact(read, sha256, 0, 8, what=name), "little")
    if header_length > max_header_bytes:
        raise InvalidSafetensors(
            f"{name}: the safetensors header is {header_length} bytes, over the limit of "
            f"{max_header_bytes} bytes (LORRY_MAX_SAFETENSORS_HEADER_BYTES); this is not a "
            f"safetensors file or it has an unusually large header"
        )
    if 8 + header_length > size:
        raise InvalidSafetensors(
            f"{name}: the header claims {header_length} bytes but the file is only {size} "
            f"bytes; the file is truncated or not a safetensors file; {_SAVE_HINT}"
        )
    raw = read_exact(read, sha256, 8, header_length, what=name)
    try:
        header = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_unique_object,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidSafetensors(
            f"{name}: the safetensors header is not valid UTF-8 JSON ({exc}); {_SAVE_HINT}"
        ) from None
    if not isinstance(header, dict):
        raise InvalidSafetensors(
            f"{name}: the safetensors header must be a JSON object; {_SAVE_HINT}"
        )
    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        raise InvalidSafetensors(f"{name}: __metadata__ must map strings to strings; {_SAVE_HINT}")
    tensors = {key: _parse_tensor(key, value, name) for key, value in header.items()}
    data_size = size - 8 - header_length
    position = 0
    for start, end, key in sorted((info.start, info.end, key) for key, info in tensors.items()):
        if start != position:
            problem = "overlaps the tensor before it" if start < position else "leaves a gap"
            raise InvalidSafetensors(
                f"{name}: tensor {key!r} starts at offset {start} of the data section, "
                f"expected {position}: it {problem}; {_SAVE_HINT}"
            )
        position = end
    if position != data_size:
        raise InvalidSafetensors(
            f"{name}: the tensors cover {position} bytes but the data section is "
            f"{data_size} bytes; the file is truncated or padded; {_SAVE_HINT}"
        )
    return tensors
