"""Validation of what a version publishes: manifest, safetensors header, LoRA adapter, card.

Pure functions over a manifest and a ``BlobReader``; the publish service calls them
before anything is committed:

    check_manifest(entries, settings)
    metadata = validate_adapter(entries, read, settings)   # kind adapter
    metadata = validate_model(entries, read, settings)     # kind model
    card = load_model_card(readme_entry, read, settings)   # or parse_model_card(text)
    readme = generate_model_card("acme/sql-gen", metadata)  # when no README.md was pushed
"""

from registry.validation.adapter import ADAPTER_WEIGHTS, AdapterMetadata, validate_adapter
from registry.validation.adapter_config import ADAPTER_CONFIG, module_rank
from registry.validation.manifest import (
    PICKLE_EXTENSIONS,
    BlobReader,
    ManifestEntry,
    check_manifest,
    check_path,
)
from registry.validation.model import MODEL_CONFIG, SAFETENSORS_INDEX, validate_model
from registry.validation.model_card import (
    MODEL_CARD,
    generate_model_card,
    load_model_card,
    parse_model_card,
)
from registry.validation.safetensors_header import DTYPE_BITS, TensorInfo, read_safetensors_header

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "DTYPE_BITS",
    "MODEL_CARD",
    "MODEL_CONFIG",
    "PICKLE_EXTENSIONS",
    "SAFETENSORS_INDEX",
    "AdapterMetadata",
    "BlobReader",
    "ManifestEntry",
    "TensorInfo",
    "check_manifest",
    "check_path",
    "generate_model_card",
    "load_model_card",
    "module_rank",
    "parse_model_card",
    "read_safetensors_header",
    "validate_adapter",
    "validate_model",
]
