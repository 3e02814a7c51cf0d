"""Merged model output: the base model's shards with the composed deltas added.

Shards are streamed: each tensor is read on its own (a short-lived memory map),
changed if it is an adapted weight, and appended to the output shard, so peak
memory stays near the largest single tensor rather than a shard or the model.
The ``safetensors`` package has no incremental writer, so ``_ShardWriter``
writes the (simple, documented) safetensors layout itself: an 8-byte little-endian
header length, a JSON header padded with spaces to 8 bytes, then the raw data.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from safetensors import safe_open

from composer.errors import InvalidBaseModel

__all__ = ["BaseModel", "Delta", "TensorEntry", "read_base_model", "write_merged"]

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5", ".gguf")
_SKIPPED = {INDEX_FILE, "pytorch_model.bin.index.json", "README.md"}

_DTYPES: dict[str, torch.dtype] = {
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
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}
#: a module's delta: dense, or factors ``(B, A)`` with ``B @ A`` the delta
Delta = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
DTYPE_BY_NAME = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class TensorEntry:
    shard: str
    dtype: str
    shape: tuple[int, ...]
    offset: int


@dataclass(frozen=True)
class BaseModel:
    """A Hugging Face model directory with safetensors weights (sharded or not)."""

    path: Path
    shards: list[str]
    indexed: bool
    tensors: dict[str, TensorEntry]
    metadata: dict[str, dict[str, str]]
    data_start: dict[str, int]


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file and where its data starts."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header: dict[str, Any] = json.loads(handle.read(length))
    return header, 8 + length


def read_base_model(path: Path) -> BaseModel:
    """Read the tensor directory (names, shapes, dtypes) of a base model, not its weights."""
    if not path.is_dir():
        raise InvalidBaseModel(f"base model {path} is not a directory")
    index_file = path / INDEX_FILE
    if index_file.is_file():
        index = json.loads(index_file.read_text(encoding="utf-8"))
        shards = sorted(set(index["weight_map"].values()))
        indexed = True
    elif (path / SINGLE_FILE).is_file():
        shards, indexed = [SINGLE_FILE], False
    else:
        raise InvalidBaseModel(
            f"base model {path} has no {SINGLE_FILE} or {INDEX_FILE}; the composer reads "
            "safetensors weights only (convert pickled .bin weights first)"
        )
    tensors: dict[str, TensorEntry] = {}
    metadata: dict[str, dict[str, str]] = {}
    data_start: dict[str, int] = {}
    for shard in shards:
        shard_path = path / shard
        if not shard_path.is_file():
            message = f"base model {path}: shard {shard} named in the index is missing"
            raise InvalidBaseModel(message)
        try:
            header, data_start[shard] = _read_header(shard_path)
        except (OSError, ValueError, struct.error) as error:
            message = f"base model {path}: unreadable shard {shard}: {error}"
            raise InvalidBaseModel(message) from None
        metadata[shard] = header.pop("__metadata__", None) or {}
        for key, info in header.items():
            if info["dtype"] not in _DTYPES:
                raise InvalidBaseModel(f"base model {path}: {key} has unsupported dtype")
            tensors[key] = TensorEntry(
                shard=shard,
                dtype=info["dtype"],
                shape=tuple(info["shape"]),
                offset=int(info["data_offsets"][0]),
            )
    return BaseModel(
        path=path,
        shards=shards,
        indexed=indexed,
        tensors=tensors,
        metadata=metadata,
        data_start=data_start,
    )


class _ShardWriter:
    """Writes one safetensors file tensor by tensor, with a header known in advance.

    Writes go to one background thread (at most one pending), so disk writes
    overlap with reading and computing the next tensor; tensors that pass through
    unchanged are copied by the kernel straight from the base shard.
    """

    def __init__(
        self, path: Path, entries: list[tuple[str, str, tuple[int, ...]]], meta: dict[str, str]
    ) -> None:
        header: dict[str, Any] = {}
        if meta:
            header["__metadata__"] = meta
        offset = 0
        self._sizes: dict[str, int] = {}
        for name, dtype, shape in entries:
            size = _DTYPES[dtype].itemsize
            for dim in shape:
                size *= dim
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
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: Future[None] | None = None
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        _write_all(self._fd, memoryview(struct.pack("<Q", len(encoded)) + encoded))

    def __enter__(self) -> _ShardWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self._wait()
        finally:
            self._pool.shutdown(wait=True)
            os.close(self._fd)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _claim(self, name: str, size: int) -> None:
        if self._order[self._next] != name:
            raise RuntimeError(f"tensor {name} written out of order")
        if size != self._sizes[name]:
            raise RuntimeError(f"tensor {name} has {size} bytes, expected {self._sizes[name]}")
        self._next += 1

    def size_of(self, name: str) -> int:
        return self._sizes[name]

    def write(self, name: str, tensor: torch.Tensor) -> None:
        data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
        self._claim(name, data.numel())
        self._wait()
        self._pending = self._pool.submit(_write_all, self._fd, data.numpy().data)

    def copy(self, name: str, source: Path, offset: int, size: int) -> None:
        """Copy ``size`` bytes of ``source`` from ``offset`` as the data of ``name``."""
        self._claim(name, size)
        self._wait()
        self._pending = self._pool.submit(_copy_range, source, offset, size, self._fd)


def _write_all(fd: int, view: memoryview) -> None:
    view = view.cast("B")
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _copy_range(source: Path, offset: int, size: int, fd: int) -> None:
    with source.open("rb") as handle:
        if hasattr(os, "copy_file_range"):
            try:
                while size:
                    copied = os.copy_file_range(handle.fileno(), fd, size, offset)
                    if copied == 0:
                        break
                    offset, size = offset + copied, size - copied
            except OSError:
                pass
        handle.seek(offset)
        while size:
            block = handle.read(min(size, 1 << 24))
            if not block:
                raise RuntimeError(f"{source} ended early")
            _write_all(fd, memoryview(block))
            size -= len(block)


def _add_delta(weight: torch.Tensor, delta: Delta, device: torch.device) -> torch.Tensor:
    """``weight + delta`` in float32 (a fresh tensor: ``weight`` is left alone)."""
    merged = weight.to(device=device, dtype=torch.float32, copy=True)
    if isinstance(delta, tuple):
        b, a = delta
        merged.addmm_(b, a)
    else:
        merged.add_(delta)
    return merged


def _read_tensor(path: Path, key: str) -> torch.Tensor:
    with safe_open(str(path), framework="pt") as handle:
        tensor: torch.Tensor = handle.get_tensor(key)
    return tensor


def copy_model_files(base: Path, out: Path, dtype_name: str | None) -> None:
    """Copy config, tokenizer and other non-weight files; note a dtype change in config.json."""
    for item in sorted(base.iterdir()):
        if not item.is_file() or item.name.startswith(".") or item.name in _SKIPPED:
            continue
        if item.name.endswith(_WEIGHT_SUFFIXES):
            continue
        if item.name == "config.json" and dtype_name is not None:
            config = json.loads(item.read_text(encoding="utf-8"))
            for key in ("torch_dtype", "dtype"):
                if key in config:
                    config[key] = dtype_name
            if "torch_dtype" not in config and "dtype" not in config:
                config["dtype"] = dtype_name
            (out / item.name).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
            continue
        shutil.copyfile(item, out / item.name)


def write_merged(
    base: BaseModel,
    out: Path,
    delta_for: Callable[[str], Delta | None],
    *,
    dtype_name: str | None,
    device: torch.device,
) -> None:
    """Write ``base`` with ``delta_for(module)`` added to each ``<module>.weight``.

    ``delta_for`` returns None for modules no input adapts, a dense delta, or
    factors ``(B, A)`` whose product is the delta (added by one fused matmul).
    Floating tensors are cast to ``dtype_name`` when it is given; other tensors
    are copied byte for byte.
    """
    out_dtype = DTYPE_BY_NAME[dtype_name] if dtype_name else None
    weight_map: dict[str, str] = {}
    total = 0
    for shard in base.shards:
        keys = sorted(
            (key for key, entry in base.tensors.items() if entry.shard == shard),
            key=lambda key: (base.tensors[key].offset, key),
        )
        entries = []
        for key in keys:
            entry = base.tensors[key]
            dtype = entry.dtype
            if out_dtype is not None and _DTYPES[dtype].is_floating_point:
                dtype = _NAMES[out_dtype]
            entries.append((key, dtype, entry.shape))
        with _ShardWriter(out / shard, entries, base.metadata[shard]) as writer:
            for key, dtype, _ in entries:
                weight_map[key] = shard
                entry = base.tensors[key]
                delta = delta_for(key.removesuffix(".weight")) if key.endswith(".weight") else None
                if delta is None and dtype == entry.dtype:
                    start = base.data_start[shard] + entry.offset
                    writer.copy(key, base.path / shard, start, writer.size_of(key))
                    continue
                tensor = _read_tensor(base.path / shard, key)
                if delta is not None:
                    tensor = _add_delta(tensor, delta, device)
                writer.write(key, tensor.to(_DTYPES[dtype]))
                del tensor, delta
            total += writer.total_size
    if base.indexed:
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (out / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    copy_model_files(base.path, out, dtype_name)
