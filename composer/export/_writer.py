"""Stream tensors into a GGUF file with gguf's own writer, one tensor at a time.

``GGUFWriter.add_tensor`` keeps every tensor until ``write_tensors_to_file``. Here
the tensor infos (name, shape, type, size) go in first, the header, metadata and
infos are written, and then each tensor is loaded, encoded and written with
``write_tensor_data`` before the next one is read: peak memory stays near the
largest tensor. The file is written under a temporary name next to the target
and renamed into place only when complete, so a failure leaves nothing behind.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter, LlamaFileType
from gguf.quants import quantize

from composer.errors import OutputExists

__all__ = [
    "OUT_TYPES",
    "OutType",
    "PlannedTensor",
    "ProgressCallback",
    "TensorLoader",
    "check_output",
    "file_type",
    "tensor_type",
    "write_gguf",
]

logger = logging.getLogger(__name__)

OutType = Literal["f32", "f16", "bf16", "q8_0"]
OUT_TYPES: tuple[str, ...] = get_args(OutType)
TensorLoader = Callable[[], npt.NDArray[np.float32]]
ProgressCallback = Callable[[str, int, int], None]
"""Called as ``(tensor_name, done, total)`` after each tensor is written."""

_FILE_TYPES: dict[str, LlamaFileType] = {
    "f32": LlamaFileType.ALL_F32,
    "f16": LlamaFileType.MOSTLY_F16,
    "bf16": LlamaFileType.MOSTLY_BF16,
    "q8_0": LlamaFileType.MOSTLY_Q8_0,
}
_MATRIX_TYPES: dict[str, GGMLQuantizationType] = {
    "f32": GGMLQuantizationType.F32,
    "f16": GGMLQuantizationType.F16,
    "bf16": GGMLQuantizationType.BF16,
    "q8_0": GGMLQuantizationType.Q8_0,
}


@dataclass(frozen=True)
class PlannedTensor:
    """A tensor to write: its GGUF name, logical shape, storage type and a loader.

    ``load`` returns the float32 values in their final layout; it is called once,
    while the file is being written.
    """

    name: str
    shape: tuple[int, ...]
    ggml_type: GGMLQuantizationType
    load: TensorLoader

    @property
    def nbytes(self) -> int:
        block_size, type_size = GGML_QUANT_SIZES[self.ggml_type]
        return math.prod(self.shape) // block_size * type_size


def file_type(outtype: OutType) -> LlamaFileType:
    return _FILE_TYPES[outtype]


def tensor_type(outtype: OutType, name: str, shape: Sequence[int]) -> GGMLQuantizationType:
    """Storage type of one tensor, with the rules of llama.cpp's converter.

    Vectors (norms, biases, rope factors) stay float32; matrices take the requested
    type, and Q8_0 falls back to F16 where a row is not a whole number of 32-value blocks.
    """
    if len(shape) <= 1 or name.endswith("_norm.weight"):
        return GGMLQuantizationType.F32
    wanted = _MATRIX_TYPES[outtype]
    block_size, _ = GGML_QUANT_SIZES[wanted]
    if shape[-1] % block_size != 0:
        return GGMLQuantizationType.F16
    return wanted


def check_output(out: Path, overwrite: bool) -> None:
    if out.is_dir():
        raise OutputExists(f"{out} is a directory; give the path of the .gguf file to write")
    if out.exists() and not overwrite:
        raise OutputExists(f"{out} exists; pass overwrite to replace it")


def _encode(
    data: npt.NDArray[np.float32], ggml_type: GGMLQuantizationType
) -> npt.NDArray[np.generic]:
    encoded: npt.NDArray[np.generic] = quantize(np.ascontiguousarray(data, np.float32), ggml_type)
    return encoded


def write_gguf(
    writer: GGUFWriter,
    out: Path,
    tensors: Sequence[PlannedTensor],
    *,
    progress: ProgressCallback | None = None,
) -> int:
    """Write ``writer``'s metadata and ``tensors`` to ``out`` atomically; return its size."""
    for tensor in tensors:
        writer.add_tensor_info(
            tensor.name,
            tensor.shape,
            np.dtype(np.float32),
            tensor.nbytes,
            raw_dtype=tensor.ggml_type,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".{out.name}.{secrets.token_hex(4)}.partial"
    try:
        writer.write_header_to_file(path=partial)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for index, tensor in enumerate(tensors, start=1):
            data = tensor.load()
            if data.shape != tensor.shape:
                raise ValueError(
                    f"{tensor.name}: loaded shape {data.shape}, planned {tensor.shape}"
                )
            writer.write_tensor_data(_encode(data, tensor.ggml_type))
            del data
            if progress is not None:
                progress(tensor.name, index, len(tensors))
        writer.close()
        os.replace(partial, out)
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    size = out.stat().st_size
    logger.info("wrote %s: %d tensors, %d bytes", out, len(tensors), size)
    return size
