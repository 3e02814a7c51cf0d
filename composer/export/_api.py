"""``export_gguf``: one entry point for adapters and models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast, get_args

from composer.adapters import ADAPTER_CONFIG
from composer.errors import InputError
from composer.export._adapter import export_adapter
from composer.export._merge import merger
from composer.export._model import export_model
from composer.export._writer import ADAPTER_OUT_TYPES, OUT_TYPES, OutType, ProgressCallback

__all__ = ["GGUFExport", "export_gguf"]


@dataclass(frozen=True)
class GGUFExport:
    """What an export wrote."""

    kind: str
    """``adapter`` or ``model``."""
    out: Path
    architecture: str
    """llama.cpp's architecture name (``llama``, ``qwen2``)."""
    outtype: str
    tensors: int
    size: int
    tokenizer_pre: str | None = None
    merged_into: Path | None = None
    """The base model the adapter was merged into, for a merged export."""


def export_gguf(
    source: Path,
    out: Path,
    *,
    outtype: str | None = None,
    base: Path | None = None,
    merge_into: Path | None = None,
    overwrite: bool = False,
    name: str | None = None,
    progress: ProgressCallback | None = None,
) -> GGUFExport:
    """Export a PEFT LoRA adapter directory or a Hugging Face model directory to GGUF.

    An adapter (a directory with ``adapter_config.json``) becomes a llama.cpp LoRA
    adapter (``--lora``); its base model's ``config.json`` comes from ``base`` or from
    the adapter's ``base_model_name_or_path`` when that is a local directory. A model
    directory becomes a GGUF model with its tokenizer. ``outtype`` is ``f32``, ``f16``,
    ``bf16`` or ``q8_0`` (default: f32 for adapters, f16 for models), or for models one
    of llama-quantize's mixes ``q4_0``, ``q4_k_s``, ``q4_k_m``, ``q5_k_m``, ``q6_k``
    (k-quants computed here, byte for byte as llama.cpp's reference quantizer).
    With ``merge_into`` (a base model directory), the adapter ``source`` is merged into
    it in float32, as ``compose`` merges, and the merged model is exported: one file,
    quantized after the merge. Nothing is written unless the whole export succeeds.
    """
    if not source.is_dir():
        raise InputError(f"{source} is not a directory")
    if merge_into is not None:
        return _export_merged(source, merge_into, out, outtype, overwrite, name, progress)
    if (source / ADAPTER_CONFIG).is_file():
        adapter_type = _as_outtype(outtype or "f32")
        if adapter_type not in ADAPTER_OUT_TYPES:
            raise InputError(
                f"outtype {adapter_type} is a quantization mix for models; a LoRA adapter "
                f"exports as {', '.join(ADAPTER_OUT_TYPES)} (merge it into its base first "
                "to ship one quantized model)"
            )
        spec, count, size = export_adapter(
            source,
            out,
            base=base,
            outtype=adapter_type,
            overwrite=overwrite,
            name=name,
            progress=progress,
        )
        return GGUFExport("adapter", out, spec.arch_name, adapter_type, count, size)
    if (source / "config.json").is_file():
        model_type = _as_outtype(outtype or "f16")
        spec, tokenizer, count, size = export_model(
            source, out, outtype=model_type, overwrite=overwrite, name=name, progress=progress
        )
        return GGUFExport("model", out, spec.arch_name, model_type, count, size, tokenizer.pre)
    raise InputError(
        f"{source} is neither a PEFT adapter ({ADAPTER_CONFIG}) nor a model (config.json)"
    )


def _export_merged(
    adapter: Path,
    base: Path,
    out: Path,
    outtype: str | None,
    overwrite: bool,
    name: str | None,
    progress: ProgressCallback | None,
) -> GGUFExport:
    if not (adapter / ADAPTER_CONFIG).is_file():
        raise InputError(
            f"{adapter} is not a PEFT adapter ({ADAPTER_CONFIG}): only an adapter merges"
        )
    model_type = _as_outtype(outtype or "f16")
    with merger(adapter, base) as merge:
        spec, tokenizer, count, size = export_model(
            base,
            out,
            outtype=model_type,
            overwrite=overwrite,
            name=name or adapter.resolve().name,
            progress=progress,
            merge=merge,
        )
    return GGUFExport(
        "model", out, spec.arch_name, model_type, count, size, tokenizer.pre, merged_into=base
    )


def _as_outtype(value: str) -> OutType:
    for known in get_args(OutType):
        if value == known:
            return cast(OutType, known)
    raise InputError(f"outtype {value!r} is not one of {', '.join(OUT_TYPES)}")
