"""Validation of a Hugging Face model directory pushed as a repository of kind ``model``.

The rules follow the adapter's: ``config.json`` must be there and parse, weights are
safetensors only (the manifest check already refuses pickles), and the shapes come
from the safetensors headers, never from the tensor data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from registry.config import Settings
from registry.errors import InvalidModel, TooLarge
from registry.validation.manifest import BlobReader, ManifestEntry
from registry.validation.safetensors_header import (
    TensorInfo,
    read_exact,
    read_safetensors_header,
)
from registry.validation.trainer_names import is_trainer_state

MODEL_CONFIG = "config.json"
SAFETENSORS_INDEX = "model.safetensors.index.json"
_SAVE_HINT = (
    "push the directory written by transformers' `save_pretrained(safe_serialization=True)`"
)
_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf")


def _load_json(entry: ManifestEntry, read: BlobReader, settings: Settings) -> dict[str, Any]:
    if entry.size > settings.max_metadata_file_bytes:
        raise TooLarge(
            f"{entry.path} is {entry.size} bytes, over the limit of "
            f"{settings.max_metadata_file_bytes} (LORRY_MAX_METADATA_FILE_BYTES)",
            path=entry.path,
        )
    raw = read_exact(read, entry.sha256, 0, entry.size, what=entry.path)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidModel(
            f"{entry.path} is not valid UTF-8 JSON ({exc}); {_SAVE_HINT}", path=entry.path
        ) from None
    if not isinstance(data, dict):
        raise InvalidModel(f"{entry.path} must hold a JSON object; {_SAVE_HINT}", path=entry.path)
    return data


def _check_index(
    index: dict[str, Any], shards: dict[str, dict[str, TensorInfo]], pushed: set[str]
) -> None:
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise InvalidModel(f"{SAFETENSORS_INDEX} has no weight_map object; {_SAVE_HINT}")
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str) or shard not in pushed:
            raise InvalidModel(
                f"{SAFETENSORS_INDEX} maps tensor {tensor!r} to {shard!r}, which is not a "
                f"safetensors file of this version; push every shard the index names"
            )
        if tensor not in shards[shard]:
            raise InvalidModel(
                f"{SAFETENSORS_INDEX} maps tensor {tensor!r} to {shard}, whose header has no "
                "such tensor"
            )


def validate_model(
    entries: Sequence[ManifestEntry], read: BlobReader, settings: Settings
) -> dict[str, Any]:
    """Check a model directory's manifest and return its metadata.

    Call ``check_manifest`` first. Reads ``config.json``, the optional
    ``model.safetensors.index.json`` and the header of every ``*.safetensors``
    file through ``read``. The metadata holds ``model_type``, ``architectures``,
    ``parameter_count``, ``dtypes``, ``tensor_count``, ``shards`` and
    ``base_model_name_or_path`` (the config's ``_name_or_path`` when it names one).
    """
    by_path = {entry.path: entry for entry in entries}
    config_entry = by_path.get(MODEL_CONFIG)
    if config_entry is None:
        raise InvalidModel(f"a model needs {MODEL_CONFIG} at the top level; {_SAVE_HINT}")
    config = _load_json(config_entry, read, settings)
    other_weights = sorted(
        e.path
        for e in entries
        if e.path.lower().endswith(_WEIGHT_SUFFIXES) and not is_trainer_state(e.path)
    )
    if other_weights:
        raise InvalidModel(
            f"weights must be safetensors; found {', '.join(other_weights)}. {_SAVE_HINT}"
        )
    weight_entries = [e for e in entries if e.path.endswith(".safetensors")]
    if not weight_entries:
        raise InvalidModel(f"a model needs at least one *.safetensors file; {_SAVE_HINT}")
    shards: dict[str, dict[str, TensorInfo]] = {}
    for entry in sorted(weight_entries, key=lambda item: item.path):
        shards[entry.path] = read_safetensors_header(
            read,
            entry.sha256,
            entry.size,
            max_header_bytes=settings.max_safetensors_header_bytes,
            name=entry.path,
        )
    index_entry = by_path.get(SAFETENSORS_INDEX)
    if index_entry is not None:
        _check_index(_load_json(index_entry, read, settings), shards, set(shards))
    tensors = [info for shard in shards.values() for info in shard.values()]
    architectures = config.get("architectures")
    name_or_path = config.get("_name_or_path")
    return {
        "model_type": config.get("model_type")
        if isinstance(config.get("model_type"), str)
        else None,
        "architectures": [a for a in architectures if isinstance(a, str)]
        if isinstance(architectures, list)
        else [],
        "parameter_count": sum(info.numel for info in tensors),
        "dtypes": sorted({info.dtype for info in tensors}),
        "tensor_count": len(tensors),
        "shards": sorted(shards),
        "base_model_name_or_path": name_or_path
        if isinstance(name_or_path, str) and name_or_path
        else None,
    }
