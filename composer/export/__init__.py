"""Export LoRA adapters and models to GGUF for llama.cpp, Ollama and LM Studio.

Written with the ``gguf`` package that llama.cpp publishes, with the metadata keys,
tensor names and layouts of llama.cpp's ``convert_lora_to_gguf.py`` and
``convert_hf_to_gguf.py``, one tensor at a time.
"""

from composer.export._api import GGUFExport, export_gguf
from composer.export._arch import SUPPORTED_ARCHITECTURES, read_model_spec
from composer.export._writer import ADAPTER_OUT_TYPES, OUT_TYPES
from composer.export.errors import (
    UnsupportedArchitecture,
    UnsupportedModel,
    UnsupportedTokenizer,
)

__all__ = [
    "ADAPTER_OUT_TYPES",
    "OUT_TYPES",
    "SUPPORTED_ARCHITECTURES",
    "GGUFExport",
    "UnsupportedArchitecture",
    "UnsupportedModel",
    "UnsupportedTokenizer",
    "export_gguf",
    "read_model_spec",
]
