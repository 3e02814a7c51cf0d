"""Hugging Face model directory -> GGUF model with its tokenizer, as convert_hf_to_gguf.py does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
from gguf import GGML_QUANT_VERSION, GGUFType, GGUFWriter
from safetensors import safe_open

from composer.errors import InvalidBaseModel
from composer.export._arch import ModelSpec, read_model_spec
from composer.export._tokenizer import TokenizerSummary, add_tokenizer
from composer.export._writer import (
    OutType,
    PlannedTensor,
    ProgressCallback,
    TensorLoader,
    check_output,
    file_type,
    tensor_type,
    write_gguf,
)
from composer.export.errors import UnsupportedModel

__all__ = ["export_model"]

_SKIPPED_SUFFIXES = (".rotary_emb.inv_freq",)


def _weight_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError) as error:
            raise InvalidBaseModel(f"unreadable {index}: {error}") from None
        return [model_dir / name for name in sorted(set(weight_map.values()))]
    single = model_dir / "model.safetensors"
    if single.is_file():
        return [single]
    pickled = any(model_dir.glob("*.bin"))
    hint = " (pickled .bin weights are refused; save with safetensors)" if pickled else ""
    raise InvalidBaseModel(f"no safetensors weights in {model_dir}{hint}")


def _loader(shard: Path, key: str, spec: ModelSpec) -> TensorLoader:
    def load() -> npt.NDArray[np.float32]:
        with safe_open(str(shard), framework="pt") as handle:
            tensor = handle.get_tensor(key)
        values: npt.NDArray[np.float32] = tensor.float().numpy()
        return spec.permute_rows(key, values)

    return load


def _plan(model_dir: Path, spec: ModelSpec, outtype: OutType) -> list[PlannedTensor]:
    planned: list[PlannedTensor] = []
    freqs = spec.rope_freqs()
    if freqs is not None:
        planned.append(
            PlannedTensor(
                "rope_freqs.weight",
                freqs.shape,
                tensor_type(outtype, "rope_freqs.weight", freqs.shape),
                lambda: freqs,
            )
        )
    for shard in _weight_files(model_dir):
        try:
            with safe_open(str(shard), framework="pt") as handle:
                shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
        except Exception as error:
            raise InvalidBaseModel(f"unreadable weights {shard}: {error}") from None
        for key, shape in shapes.items():
            if key.endswith(_SKIPPED_SUFFIXES):
                continue
            if key == "lm_head.weight" and spec.tie_word_embeddings:
                continue
            name = spec.gguf_name(key)
            if name is None:
                raise UnsupportedModel(
                    f"tensor {key} of {shard.name} has no llama.cpp name in {spec.arch_name}"
                )
            planned.append(
                PlannedTensor(
                    name, shape, tensor_type(outtype, name, shape), _loader(shard, key, spec)
                )
            )
    names = [tensor.name for tensor in planned]
    if len(set(names)) != len(names):
        raise UnsupportedModel(f"{model_dir}: two tensors map to the same llama.cpp name")
    if "token_embd.weight" not in names:
        raise UnsupportedModel(f"{model_dir}: no token embedding (model.embed_tokens.weight)")
    return planned


def export_model(
    model_dir: Path,
    out: Path,
    *,
    outtype: OutType,
    overwrite: bool,
    name: str | None,
    progress: ProgressCallback | None,
) -> tuple[ModelSpec, TokenizerSummary, int, int]:
    """Write ``model_dir`` as a GGUF model; return (spec, tokenizer, tensor count, bytes)."""
    check_output(out, overwrite)
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise InvalidBaseModel(f"no config.json in {model_dir}")
    spec = read_model_spec(config_file)
    tensors = _plan(model_dir, spec, outtype)

    writer = GGUFWriter(None, spec.arch_name)
    writer.add_type(GGUFType.MODEL)
    writer.add_name(name or model_dir.resolve().name)
    spec.add_hyperparameters(writer)
    writer.add_file_type(file_type(outtype))
    writer.add_quantization_version(GGML_QUANT_VERSION)
    tokenizer = add_tokenizer(writer, model_dir, spec.vocab_size)
    size = write_gguf(writer, out, tensors, progress=progress)
    return spec, tokenizer, len(tensors), size
