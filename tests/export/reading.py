"""Read GGUF files back with gguf.GGUFReader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from gguf import GGUFReader
from gguf.quants import dequantize


def metadata(path: Path) -> dict[str, Any]:
    reader = GGUFReader(path)
    return {key: field.contents() for key, field in reader.fields.items()}


def tensors(path: Path) -> dict[str, tuple[str, npt.NDArray[np.float32]]]:
    """name -> (ggml type name, float32 values in numpy (row-major) shape)."""
    reader = GGUFReader(path)
    out: dict[str, tuple[str, npt.NDArray[np.float32]]] = {}
    for tensor in reader.tensors:
        shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))
        values = dequantize(tensor.data, tensor.tensor_type).reshape(shape).astype(np.float32)
        out[tensor.name] = (tensor.tensor_type.name, values)
    return out


def permute_like_llama_cpp(rows: npt.NDArray[np.float32], n_head: int) -> npt.NDArray[np.float32]:
    """convert_hf_to_gguf.py's LlamaModel.permute, written out independently."""
    shape = rows.shape
    return (
        rows.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
    )
