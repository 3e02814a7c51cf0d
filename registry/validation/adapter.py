"""Validation of a PEFT LoRA adapter and extraction of its metadata.

What is accepted, by tensor name (PEFT saves names without the adapter name,
under the prefix ``base_model.model.``; the module name is what lies between
the prefix and the suffix, e.g. ``model.layers.0.self_attn.q_proj``):

- ``<module>.lora_A.weight`` / ``<module>.lora_B.weight``: Linear and Conv1D
  layers; ``lora_A`` is ``[r_m, in]`` and ``lora_B`` is ``[out, r_m]``.
- ``<module>.lora_embedding_A`` / ``<module>.lora_embedding_B``: Embedding
  layers; ``lora_embedding_A`` is ``[r_m, num_embeddings]`` and
  ``lora_embedding_B`` is ``[embedding_dim, r_m]``. In the metadata they appear
  under ``lora_A`` / ``lora_B`` like any other module.
- ``<module>.lora_magnitude_vector``: DoRA magnitudes, ``[out]``, only when the
  config says ``use_dora: true``, and then required for every module; recorded
  as ``lora_magnitude_vector: [out]`` in the module's metadata entry.

``r_m`` is the module's rank: its ``rank_pattern`` value, else ``r``, and the
module must be one that ``target_modules`` selects (PEFT would silently ignore
the weights of any other), both by PEFT's own matching rules (see
``adapter_config``; ``exclude_modules`` and ``layers_to_transform`` are not
applied, so this never refuses what PEFT would load).

Everything else is refused with a message naming the tensor: full-weight copies
(``modules_to_save``, the embedding layers PEFT saves when an embedding is
targeted; save with ``save_embedding_layers=False``), LoRA biases
(``lora_bias``), convolution LoRA (4-D factors) and any other name. Lorry
stores low-rank factors only, so that every version can be composed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from registry.config import Settings
from registry.errors import InvalidAdapter
from registry.validation.adapter_config import (
    ADAPTER_CONFIG,
    SAVE_HINT,
    PatternBudget,
    is_targeted,
    load_adapter_config,
    module_rank,
)
from registry.validation.manifest import BlobReader, ManifestEntry
from registry.validation.safetensors_header import TensorInfo, read_safetensors_header

__all__ = ["ADAPTER_WEIGHTS", "PREFIX", "AdapterMetadata", "validate_adapter"]

ADAPTER_WEIGHTS = "adapter_model.safetensors"
PREFIX = "base_model.model."

_SUFFIXES = {
    ".lora_A.weight": "lora_A",
    ".lora_B.weight": "lora_B",
    ".lora_embedding_A": "lora_A",
    ".lora_embedding_B": "lora_B",
    ".lora_magnitude_vector": "lora_magnitude_vector",
}
_OPTIONAL_KEYS = ("task_type", "use_dora", "bias")


class AdapterMetadata(BaseModel):
    """What a version records about its adapter (the ``metadata`` of the REST Version)."""

    model_config = ConfigDict(frozen=True)

    peft_type: str
    r: int
    lora_alpha: int | float
    use_rslora: bool
    target_modules: list[str] | str
    base_model_name_or_path: str | None
    rank_pattern: dict[str, int]
    alpha_pattern: dict[str, int | float]
    parameter_count: int
    dtypes: list[str]
    modules: dict[str, dict[str, list[int]]]
    task_type: str | None = None
    use_dora: bool | None = None
    bias: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``task_type``, ``use_dora`` and ``bias`` only when known."""
        data = self.model_dump(mode="json")
        for key in _OPTIONAL_KEYS:
            if data[key] is None:
                del data[key]
        return data


def _find(entries: Sequence[ManifestEntry], path: str, hint: str) -> ManifestEntry:
    for entry in entries:
        if entry.path == path:
            return entry
    raise InvalidAdapter(f"the version has no {path} at its root; {hint}", path=path)


def _split_name(name: str) -> tuple[str, str]:
    for suffix, kind in _SUFFIXES.items():
        if name.startswith(PREFIX) and name.endswith(suffix):
            module = name[len(PREFIX) : -len(suffix)]
            if module:
                return module, kind
    raise InvalidAdapter(
        f"{ADAPTER_WEIGHTS}: tensor {name!r} is not a LoRA factor; Lorry accepts "
        f"'{PREFIX}<module>.lora_A.weight' / '.lora_B.weight', '.lora_embedding_A' / "
        f"'.lora_embedding_B' and DoRA's '.lora_magnitude_vector' only. Full-weight copies "
        f"(modules_to_save, embedding layers: save with `save_embedding_layers=False`) and "
        f"LoRA biases cannot be stored; {SAVE_HINT} without them",
        tensor=name,
    )


def _check_module(
    module: str,
    factors: dict[str, TensorInfo],
    config: dict[str, Any],
    targets: str | Collection[str],
    budget: PatternBudget,
) -> None:
    for kind in ("lora_A", "lora_B"):
        if kind not in factors:
            raise InvalidAdapter(
                f"{ADAPTER_WEIGHTS}: module {module!r} has {' and '.join(sorted(factors))} but "
                f"no {kind}; every LoRA "
                f"module needs both factors; {SAVE_HINT}",
                module=module,
            )
    a, b = factors["lora_A"], factors["lora_B"]
    for kind, info in (("lora_A", a), ("lora_B", b)):
        if len(info.shape) != 2:
            raise InvalidAdapter(
                f"{ADAPTER_WEIGHTS}: {kind} of module {module!r} has shape {list(info.shape)}; "
                f"Lorry accepts 2-D LoRA factors (Linear, Conv1D and Embedding layers), not "
                f"convolution LoRA",
                module=module,
            )
    if not is_targeted(module, targets, budget):
        raise InvalidAdapter(
            f"{ADAPTER_WEIGHTS}: module {module!r} has LoRA weights but target_modules "
            f"{config['target_modules']!r} does not select it, so PEFT would ignore them; "
            f"add it to target_modules in {ADAPTER_CONFIG} or {SAVE_HINT}",
            module=module,
        )
    rank, key = module_rank(module, config["r"], config["rank_pattern"], budget)
    source = f"rank_pattern[{key!r}]" if key is not None else "r"
    if a.shape[0] != rank or b.shape[1] != rank:
        raise InvalidAdapter(
            f"{ADAPTER_WEIGHTS}: module {module!r} has lora_A {list(a.shape)} and lora_B "
            f"{list(b.shape)}, but {ADAPTER_CONFIG} gives it rank {rank} (from {source}): "
            f"expected lora_A [{rank}, in] and lora_B [out, {rank}]; fix r / rank_pattern "
            f"or {SAVE_HINT}",
            module=module,
        )
    magnitude = factors.get("lora_magnitude_vector")
    if config["use_dora"] is True:
        if magnitude is None or magnitude.shape != (b.shape[0],):
            shown = "none" if magnitude is None else str(list(magnitude.shape))
            raise InvalidAdapter(
                f"{ADAPTER_WEIGHTS}: module {module!r} is a DoRA module (use_dora is true) "
                f"and needs lora_magnitude_vector of shape [{b.shape[0]}], found {shown}; "
                f"{SAVE_HINT}",
                module=module,
            )
    elif magnitude is not None:
        raise InvalidAdapter(
            f"{ADAPTER_WEIGHTS}: module {module!r} has a DoRA lora_magnitude_vector but "
            f"{ADAPTER_CONFIG} does not set use_dora: true; {SAVE_HINT}",
            module=module,
        )


def validate_adapter(
    entries: Sequence[ManifestEntry], read: BlobReader, settings: Settings
) -> AdapterMetadata:
    """Check the PEFT LoRA adapter of a manifest and return its metadata
    (``validate_adapter_tensors`` without the header)."""
    return validate_adapter_tensors(entries, read, settings)[0]


def validate_adapter_tensors(
    entries: Sequence[ManifestEntry], read: BlobReader, settings: Settings
) -> tuple[AdapterMetadata, dict[str, TensorInfo]]:
    """Check the PEFT LoRA adapter of a manifest; its metadata and the tensors of its
    safetensors header, parsed once for whoever reads them next (the non-finite check).

    Call ``check_manifest`` first; this reads ``adapter_config.json`` and the header of
    ``adapter_model.safetensors`` through ``read`` (never the tensor data).
    """
    config_entry = _find(
        entries, ADAPTER_CONFIG, "push the directory written by PEFT's `save_pretrained`"
    )
    weights_entry = _find(
        entries,
        ADAPTER_WEIGHTS,
        "push the directory written by PEFT's `save_pretrained` (safetensors is its default)",
    )
    budget = PatternBudget()
    config = load_adapter_config(config_entry, read, settings, budget)
    tensors = read_safetensors_header(
        read,
        weights_entry.sha256,
        weights_entry.size,
        max_header_bytes=settings.max_safetensors_header_bytes,
        name=ADAPTER_WEIGHTS,
    )
    if not tensors:
        raise InvalidAdapter(f"{ADAPTER_WEIGHTS} holds no tensors; {SAVE_HINT}")
    by_module: dict[str, dict[str, TensorInfo]] = {}
    for name, info in tensors.items():
        module, kind = _split_name(name)
        factors = by_module.setdefault(module, {})
        if kind in factors:
            raise InvalidAdapter(
                f"{ADAPTER_WEIGHTS}: module {module!r} has two {kind} tensors (a Linear and "
                f"an Embedding factor); {SAVE_HINT}",
                module=module,
            )
        factors[kind] = info
    targets = config["target_modules"]
    targets = targets if isinstance(targets, str) else frozenset(targets)
    modules: dict[str, dict[str, list[int]]] = {}
    for module in sorted(by_module):
        _check_module(module, by_module[module], config, targets, budget)
        modules[module] = {kind: list(info.shape) for kind, info in by_module[module].items()}
    metadata = AdapterMetadata(
        **config,
        parameter_count=sum(info.numel for info in tensors.values()),
        dtypes=sorted({info.dtype for info in tensors.values()}),
        modules={m: dict(sorted(shapes.items())) for m, shapes in modules.items()},
    )
    return metadata, tensors
