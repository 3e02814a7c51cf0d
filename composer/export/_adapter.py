"""PEFT LoRA adapter -> GGUF LoRA adapter, as llama.cpp's convert_lora_to_gguf.py writes it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
from gguf import GGML_QUANT_VERSION, GGUFType, GGUFWriter, Keys
from safetensors import safe_open

from composer.adapters import ADAPTER_CONFIG, AdapterInfo, read_adapter
from composer.errors import InvalidBaseModel, UnsupportedAdapter
from composer.export._arch import ModelSpec, read_model_spec
from composer.export._writer import (
    OutType,
    PlannedTensor,
    ProgressCallback,
    check_output,
    tensor_type,
    write_gguf,
)

__all__ = ["export_adapter", "find_base_config"]

_PREFIX = "base_model.model."


def find_base_config(adapter_dir: Path, base: Path | None) -> Path:
    """The base model's ``config.json``: from ``base`` (a directory or the file itself),
    else from the adapter's ``base_model_name_or_path`` when that is a local directory."""
    if base is None:
        try:
            config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            config = {}
        named = config.get("base_model_name_or_path") if isinstance(config, dict) else None
        if not named or not (Path(named).expanduser() / "config.json").is_file():
            raise InvalidBaseModel(
                f"the base model {named!r} of {adapter_dir} is not a local directory; "
                "give the base model's directory (its config.json is enough) as base "
                "(`lorry export gguf ... --base DIR`)"
            )
        return Path(named).expanduser() / "config.json"
    candidate = base / "config.json" if base.is_dir() else base
    if not candidate.is_file():
        raise InvalidBaseModel(f"no config.json for the base model at {base}")
    return candidate


def _alpha(adapter_dir: Path) -> float:
    config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    return float(config["lora_alpha"])


def _llama_cpp_scale(alpha: float, rank: int) -> float:
    # llama-adapter.cpp: scale = alpha ? user_scale * alpha / rank : user_scale
    return alpha / rank if alpha else 1.0


def _plan(
    adapter: AdapterInfo, spec: ModelSpec, alpha: float, outtype: OutType
) -> list[PlannedTensor]:
    planned: list[PlannedTensor] = []
    for module, info in adapter.modules.items():
        target = spec.gguf_name(f"{module}.weight")
        if target is None:
            raise UnsupportedAdapter(
                f"adapter {adapter.source}: module {module} has no llama.cpp tensor in "
                f"{spec.arch_name}"
            )
        if target == "token_embd.weight" or (
            target == "output.weight" and spec.tie_word_embeddings
        ):
            raise UnsupportedAdapter(
                f"adapter {adapter.source}: LoRA on {module} is not supported in GGUF "
                "(embeddings, or an lm_head tied to them)"
            )
        # llama.cpp scales by alpha/rank with one alpha per file: fold any other PEFT scale
        # (rsLoRA, alpha_pattern) into B so that scale * B @ A is unchanged.
        correction = info.scale / _llama_cpp_scale(alpha, info.rank)
        a_shape = (info.rank, info.in_features)
        b_shape = (info.out_features, info.rank)

        def load_a(module: str = module) -> npt.NDArray[np.float32]:
            return _factor(adapter, module, "A")

        def load_b(module: str = module, correction: float = correction) -> npt.NDArray[np.float32]:
            b = _factor(adapter, module, "B")
            if correction != 1.0:
                b = b * np.float32(correction)
            return spec.permute_rows(f"{module}.weight", b)

        for suffix, shape, load in (("lora_a", a_shape, load_a), ("lora_b", b_shape, load_b)):
            name = f"{target}.{suffix}"
            planned.append(PlannedTensor(name, shape, tensor_type(outtype, name, shape), load))
    return planned


def _factor(adapter: AdapterInfo, module: str, factor: str) -> npt.NDArray[np.float32]:
    with safe_open(str(adapter.weights_file), framework="pt") as handle:
        tensor = handle.get_tensor(f"{_PREFIX}{module}.lora_{factor}.weight")
    values: npt.NDArray[np.float32] = tensor.float().numpy()
    return values


def export_adapter(
    adapter_dir: Path,
    out: Path,
    *,
    base: Path | None,
    outtype: OutType,
    overwrite: bool,
    name: str | None,
    progress: ProgressCallback | None,
) -> tuple[ModelSpec, int, int]:
    """Write ``adapter_dir`` as a GGUF LoRA adapter; return (spec, tensor count, bytes)."""
    check_output(out, overwrite)
    adapter = read_adapter(str(adapter_dir), location=adapter_dir)
    spec = read_model_spec(find_base_config(adapter_dir, base))
    alpha = _alpha(adapter_dir)
    tensors = _plan(adapter, spec, alpha, outtype)

    writer = GGUFWriter(None, spec.arch_name)
    writer.add_type(GGUFType.ADAPTER)
    writer.add_string(Keys.Adapter.TYPE, "lora")
    writer.add_float32(Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name(name or adapter_dir.resolve().name)
    writer.add_quantization_version(GGML_QUANT_VERSION)
    size = write_gguf(writer, out, tensors, progress=progress)
    return spec, len(tensors), size
