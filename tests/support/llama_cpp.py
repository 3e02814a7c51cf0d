"""A real llama.cpp for the tests: llama-cpp-python on the libraries .ci/llama_cpp.sh builds.

``LORRY_LLAMA_CPP_DIR`` names the directory the script prints (``lib/`` holds libllama
and libggml*); the binding is pointed at it with ``LLAMA_CPP_LIB_PATH``. Where llama.cpp
is missing the test is skipped with the reason, and fails under
``LORRY_TEST_REQUIRE_ALL=1`` (CI), like PostgreSQL and S3.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from tests.support.processes import unavailable

LLAMA_CPP_DIR_ENV = "LORRY_LLAMA_CPP_DIR"
_HOW = "build it with `bash .ci/llama_cpp.sh` and export LORRY_LLAMA_CPP_DIR=<the printed path>"


def _library_dir() -> Path | None:
    directory = os.environ.get(LLAMA_CPP_DIR_ENV)
    if directory:
        return Path(directory) / "lib"
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    return Path(override) if override else None


def load_llama_cpp() -> ModuleType:
    """``import llama_cpp`` on the built libraries, or skip / fail with the reason."""
    library_dir = _library_dir()
    if library_dir is not None:
        os.environ["LLAMA_CPP_LIB_PATH"] = str(library_dir)
    try:
        import llama_cpp
    except (ImportError, RuntimeError, OSError) as error:
        unavailable(f"llama.cpp is not available ({error}); {_HOW}")
    return llama_cpp


def llama_quantize(source: Path, out: Path, ftype: int) -> None:
    """llama-quantize's work: ``llama_model_quantize`` with its default parameters."""
    llama_cpp = load_llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    status = llama_cpp.llama_model_quantize(
        str(source).encode(), str(out).encode(), ctypes.byref(params)
    )
    assert status == 0, f"llama_model_quantize failed ({status})"


@cache
def _ggml_quantize_chunk() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    llama_cpp = load_llama_cpp()
    library = ctypes.CDLL(str(Path(llama_cpp.llama_cpp._base_path) / "libggml-base.so"))
    function = library.ggml_quantize_chunk
    function.restype = ctypes.c_size_t
    function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    function.argtypes += [ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    return function


def ggml_quantize(
    rows: npt.NDArray[np.float32], ggml_type: GGMLQuantizationType
) -> npt.NDArray[np.uint8]:
    """ggml's own ``ggml_quantize_chunk`` (no importance matrix) of a 2-D float32 array."""
    rows = np.ascontiguousarray(rows, np.float32)
    block_size, type_size = GGML_QUANT_SIZES[ggml_type]
    out = np.zeros(rows.size // block_size * type_size, np.uint8)
    written = _ggml_quantize_chunk()(
        int(ggml_type), rows.ctypes.data, out.ctypes.data, 0, rows.shape[0], rows.shape[1], None
    )
    assert written == out.size
    return out
