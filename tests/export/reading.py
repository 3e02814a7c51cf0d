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
