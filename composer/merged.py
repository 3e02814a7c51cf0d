"""Merged model output: the base model's shards with the composed deltas added.

Shards are streamed. A base shard is memory-mapped and each tensor is a view of
it; a tensor that passes through unchanged is copied without entering torch. An
adapted weight is merged a chunk of rows at a time, in one reused float32 buffer
that stays in cache, and each rounded chunk goes straight into the output's staging
buffers (``composer.shards``): memory stays at a few tens of MB whatever the model,
and no weight is converted as a whole.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from composer.errors import InvalidBaseModel
from composer.shards import DTYPES as _DTYPES
from composer.shards import ShardWriter

__all__ = ["BaseModel", "Delta", "TensorEntry", "add_delta", "read_base_model", "write_merged"]

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5", ".gguf")
_SKIPPED = {INDEX_FILE, "pytorch_model.bin.index.json", "README.md"}

_NAMES = {dtype: name for name, dtype in _DTYPES.items()}
#: a module's delta: dense, or factors ``(B, A)`` with ``B @ A`` the delta
Delta = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
DTYPE_BY_NAME = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_CHUNK_ELEMENTS = 1 << 21
"""Elements per computed chunk: its float32 work buffer (8 MiB) stays in the CPU's last
level cache, and each chunk's operations are long enough for torch's threads to share
usefully (measured against 0.5 and 1 M elements: as fast or faster, and steadier)."""


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
        data_end = 0
        for key, info in header.items():
            if info["dtype"] not in _DTYPES:
                raise InvalidBaseModel(f"base model {path}: {key} has unsupported dtype")
            tensors[key] = TensorEntry(
                shard=shard,
                dtype=info["dtype"],
                shape=tuple(info["shape"]),
                offset=int(info["data_offsets"][0]),
            )
            data_end = max(data_end, int(info["data_offsets"][1]))
        size = shard_path.stat().st_size
        if size < data_start[shard] + data_end:
            message = (
                f"base model {path}: shard {shard} is truncated ({size} bytes, its header "
                f"describes {data_start[shard] + data_end}); download or copy it again"
            )
            raise InvalidBaseModel(message)
    return BaseModel(
        path=path,
        shards=shards,
        indexed=indexed,
        tensors=tensors,
        metadata=metadata,
        data_start=data_start,
    )


class _Source:
    """A base shard, memory-mapped: tensors are read as views of the page cache, no copy."""

    def __init__(self, path: Path, data_start: int) -> None:
        self.data_start = data_start
        self.fd = os.open(path, os.O_RDONLY)
        size = os.fstat(self.fd).st_size
        # ACCESS_COPY: a private mapping that torch may view without a read-only warning;
        # nothing writes to it, so no page is ever copied.
        self._map = mmap.mmap(self.fd, 0, access=mmap.ACCESS_COPY) if size else None

    def tensor(self, entry: TensorEntry) -> torch.Tensor:
        """The base tensor ``entry``, in its own dtype and shape."""
        dtype, count = _DTYPES[entry.dtype], math.prod(entry.shape)
        start = self.data_start + entry.offset
        if count == 0:
            return torch.empty(entry.shape, dtype=dtype)
        if self._map is None or start % dtype.itemsize:
            # misaligned for its dtype: read a copy instead of a view
            data = bytearray(os.pread(self.fd, count * dtype.itemsize, start))
            return torch.frombuffer(data, dtype=torch.uint8).view(dtype).reshape(entry.shape)
        flat = torch.frombuffer(self._map, dtype=dtype, count=count, offset=start)
        return flat.reshape(entry.shape)

    def release(self, entry: TensorEntry) -> None:
        """Unmap the pages of ``entry`` (they stay in the page cache): the process's
        resident memory then holds one tensor of the shard at a time, not the shard."""
        if self._map is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        start = self.data_start + entry.offset
        end = start + _DTYPES[entry.dtype].itemsize * math.prod(entry.shape)
        first = start - start % mmap.PAGESIZE
        if end > first:
            self._map.madvise(mmap.MADV_DONTNEED, first, end - first)

    def close(self) -> None:
        try:
            if self._map is not None:
                self._map.close()
        except BufferError:  # a view is still alive (an error unwinding): unmapped when freed
            pass
        finally:
            os.close(self.fd)


def _chunk_rows(tensor: torch.Tensor) -> int:
    """Rows per chunk: about ``_CHUNK_ELEMENTS`` elements, at least one row."""
    return max(1, _CHUNK_ELEMENTS // max(1, tensor.shape[1]))


class _Scratch:
    """A float32 work buffer, reused from chunk to chunk and tensor to tensor."""

    def __init__(self) -> None:
        self._buffer = torch.empty(0, dtype=torch.float32)

    def take(self, elements: int) -> torch.Tensor:
        if self._buffer.numel() < elements:
            self._buffer = torch.empty(elements, dtype=torch.float32)
        return self._buffer[:elements]


def _emit(writer: ShardWriter, values: torch.Tensor, dtype: torch.dtype) -> None:
    """Append ``values`` cast to ``dtype``: cast straight into the writer's staging
    buffer, or through a temporary where the file offset is misaligned for ``dtype``."""
    nbytes = values.numel() * dtype.itemsize
    out = writer.reserve(nbytes)
    if out.data_ptr() % dtype.itemsize == 0:
        out.view(dtype).view(values.shape).copy_(values)
        writer.commit(nbytes)
    else:
        cast = values.to(dtype).reshape(-1).view(torch.uint8)
        writer.append(cast.numpy().data)


def _write_merged_cpu(
    writer: ShardWriter,
    weight: torch.Tensor,
    delta: Delta,
    out_dtype: torch.dtype,
    scratch: _Scratch,
) -> None:
    """``weight + delta`` in float32, rounded to ``out_dtype``, a chunk of rows at a time.

    Each element is computed exactly as ``weight.float().addmm_(B, A)`` (or ``.add_``)
    computes it for the whole matrix: the delta's inner dimension is never split,
    so chunking the rows changes which elements one call computes, not how.
    """
    rows, columns = _chunk_rows(weight), weight.shape[1]
    work = scratch.take(rows * columns)
    for first in range(0, weight.shape[0], rows):
        last = min(first + rows, weight.shape[0])
        chunk = work[: (last - first) * columns].view(last - first, columns)
        chunk.copy_(weight[first:last])
        if isinstance(delta, tuple):
            chunk.addmm_(delta[0][first:last], delta[1])
        else:
            chunk.add_(delta[first:last])
        _emit(writer, chunk, out_dtype)


def _write_cast(writer: ShardWriter, tensor: torch.Tensor, out_dtype: torch.dtype) -> None:
    """``tensor.to(out_dtype)``, a chunk at a time."""
    flat = tensor.reshape(-1)
    for first in range(0, flat.numel(), _CHUNK_ELEMENTS):
        _emit(writer, flat[first : first + _CHUNK_ELEMENTS], out_dtype)


def add_delta(weight: torch.Tensor, delta: Delta, device: torch.device) -> torch.Tensor:
    """``weight + delta`` in float32 (a fresh tensor: ``weight`` is left alone)."""
    merged = weight.to(device=device, dtype=torch.float32, copy=True)
    if isinstance(delta, tuple):
        b, a = delta
        merged.addmm_(b, a)
    else:
        merged.add_(delta)
    return merged


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
    overlap = _spare_core(device)
    scratch = _Scratch()
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
        source = _Source(base.path / shard, base.data_start[shard])
        try:
            with ShardWriter(out / shard, entries, base.metadata[shard], overlap=overlap) as writer:
                for key, dtype, _ in entries:
                    weight_map[key] = shard
                    delta = (
                        delta_for(key.removesuffix(".weight")) if key.endswith(".weight") else None
                    )
                    _write_tensor(
                        writer, source, key, base.tensors[key], dtype, delta, device, scratch
                    )
                    del delta
                total += writer.total_size
        finally:
            source.close()
    if base.indexed:
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (out / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    copy_model_files(base.path, out, dtype_name)


def _spare_core(device: torch.device) -> bool:
    """Whether a writer thread would have a core to itself: not when torch's own threads
    already take every core, as writes (kernel copies) would then slow its parallel
    regions, whose threads wait for each other (measured: up to 4x slower; see
    bench/README-compose.md)."""
    if device.type != "cpu":
        return True
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return torch.get_num_threads() < (cores or 1)


def _write_tensor(
    writer: ShardWriter,
    source: _Source,
    key: str,
    entry: TensorEntry,
    dtype: str,
    delta: Delta | None,
    device: torch.device,
    scratch: _Scratch,
) -> None:
    """Append base tensor ``key`` to ``writer``: as ``dtype``, with ``delta`` added if any."""
    size = writer.claim(key)
    if delta is None and dtype == entry.dtype:
        writer.copy(source.fd, source.data_start + entry.offset, size)
        return
    tensor, target = source.tensor(entry), _DTYPES[dtype]
    if delta is None:
        _write_cast(writer, tensor, target)
    elif device.type == "cpu":
        _write_merged_cpu(writer, tensor, delta, target, scratch)
    else:
        # One call on the accelerator, as before: a chunked matmul could pick other kernels.
        merged = add_delta(tensor, delta, device).to(target).cpu()
        writer.append(merged.reshape(-1).view(torch.uint8).numpy().data)
        del merged
    del tensor
    source.release(entry)
