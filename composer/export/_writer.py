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
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFWriter, LlamaFileType

from composer.errors import OutputExists
from composer.export._kquants import quantize_tensor
from composer.export._mixes import K_MIXES, mix_file_type

__all__ = [
    "ADAPTER_OUT_TYPES",
    "OUT_TYPES",
    "OutType",
    "PlannedTensor",
    "ProgressCallback",
    "TensorLoader",
    "Values",
    "check_output",
    "file_type",
    "tensor_type",
    "write_gguf",
]

logger = logging.getLogger(__name__)

OutType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_s", "q4_k_m", "q5_k_m", "q6_k"]
OUT_TYPES: tuple[str, ...] = get_args(OutType)
ADAPTER_OUT_TYPES: tuple[str, ...] = ("f32", "f16", "bf16", "q8_0")
"""LoRA adapters: the converter's types; the quantization mixes are for models."""
Values = npt.NDArray[np.float32] | torch.Tensor
"""A tensor's values in their final layout: float32 numpy, or a torch tensor of any
floating dtype (a bfloat16 weight as it was read), converted a piece at a time."""
TensorLoader = Callable[[], Values]
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

    ``load`` returns the values in their final layout; it is called once, while the
    file is being written.
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
    if outtype in K_MIXES:
        return mix_file_type(outtype)
    return _FILE_TYPES[outtype]


def tensor_type(outtype: OutType, name: str, shape: Sequence[int]) -> GGMLQuantizationType:
    """Storage type of one tensor, with the rules of llama.cpp's converter.

    Vectors (norms, biases, rope factors) stay float32; matrices take the requested
    type, and Q8_0 falls back to F16 where a row is not a whole number of 32-value blocks.
    Under a quantization mix (``q4_k_m`` ...) this is the type before the mix's rules
    (``composer.export._mixes``): float16, as llama-quantize's input usually is.
    """
    if len(shape) <= 1 or name.endswith("_norm.weight"):
        return GGMLQuantizationType.F32
    if outtype in K_MIXES:
        return GGMLQuantizationType.F16
    wanted = _MATRIX_TYPES[outtype]
    block_size, _ = GGML_QUANT_SIZES[wanted]
    if shape[-1] % block_size != 0:
        return GGMLQuantizationType.F16
    return wanted


def check_output(out: Path, overwrite: bool) -> None:
    if out.is_dir():
        raise OutputExists(f"{out} is a directory; give the path of the .gguf file to write")
    if out.exists() and not overwrite:
        raise OutputExists(
            f"{out} exists; pass overwrite=True (`--overwrite` in the CLI) to replace it"
        )


_PIECE_VALUES = 1 << 20
"""Values converted to float32 and encoded at a time: a 128256 x 3072 embedding is
never whole in float32 (1.5 GB), only as read and as encoded."""


def _float32(values: Values) -> npt.NDArray[np.float32]:
    if isinstance(values, torch.Tensor):
        converted: npt.NDArray[np.float32] = values.to(torch.float32).numpy()
        return converted
    return np.asarray(values, dtype=np.float32)


def _encode(data: Values, ggml_type: GGMLQuantizationType) -> npt.NDArray[np.uint8]:
    """The bytes of ``data`` as ``ggml_type``, encoded a piece of whole rows at a time."""
    columns = data.shape[-1] if len(data.shape) else 1
    rows = data.reshape(-1, columns)
    block_size, type_size = GGML_QUANT_SIZES[ggml_type]
    row_bytes = columns // block_size * type_size
    out = np.empty(rows.shape[0] * row_bytes, dtype=np.uint8)
    step = max(1, _PIECE_VALUES // max(1, columns))
    for first in range(0, rows.shape[0], step):
        piece = _float32(rows[first : first + step])
        encoded = quantize_tensor(piece, ggml_type)
        out[first * row_bytes : first * row_bytes + encoded.size] = encoded
    return out


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
