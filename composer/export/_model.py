"""Hugging Face model directory -> GGUF model with its tokenizer, as convert_hf_to_gguf.py does."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from gguf import GGML_QUANT_VERSION, GGUFType, GGUFWriter
from safetensors import safe_open

from composer.errors import InvalidBaseModel
from composer.export._arch import ModelSpec, read_model_spec
from composer.export._merge import Merger
from composer.export._mixes import K_MIXES, mix_types
from composer.export._phi3_rule import llama_cpp_name
from composer.export._tokenizer import TokenizerSummary, read_tokenizer
from composer.export._writer import (
    OutType,
    PlannedTensor,
    ProgressCallback,
    TensorLoader,
    Values,
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


def _loader(shard: Path, key: str, spec: ModelSpec, merge: Merger | None) -> TensorLoader:
    def load() -> Values:
        with safe_open(str(shard), framework="pt") as handle:
            tensor: torch.Tensor = handle.get_tensor(key)
        if merge is not None:
            tensor = merge(key, tensor)
        if spec.norm_shift and key.endswith("norm.weight"):
            # in float32, as transformers computes Gemma's ``1 + weight``
            tensor = tensor.float() + spec.norm_shift
        if spec.permute_qk and (".q_proj." in key or ".k_proj." in key):
            values: npt.NDArray[np.float32] = tensor.float().numpy()
            return spec.permute_rows(key, values)
        return tensor

    return load


def _constant(values: Values) -> TensorLoader:
    return lambda: values


def _plan(
    model_dir: Path, spec: ModelSpec, outtype: OutType, merge: Merger | None
) -> list[PlannedTensor]:
    planned: list[PlannedTensor] = []
    for extra, values in spec.extra_tensors():
        planned.append(
            PlannedTensor(
                extra,
                values.shape,
                tensor_type(outtype, extra, values.shape),
                _constant(values),
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
                    name, shape, tensor_type(outtype, name, shape), _loader(shard, key, spec, merge)
                )
            )
    planned.sort(key=_layer_order)
    names = [tensor.name for tensor in planned]
    if len(set(names)) != len(names):
        raise UnsupportedModel(f"{model_dir}: two tensors map to the same llama.cpp name")
    if "token_embd.weight" not in names:
        raise UnsupportedModel(f"{model_dir}: no token embedding (model.embed_tokens.weight)")
    if outtype in K_MIXES:
        return _apply_mix(outtype, planned, spec.n_layers)
    return planned


def _layer_order(tensor: PlannedTensor) -> int:
    """Blocks in layer order (blk.2 before blk.10): llama.cpp's mixes count layers as
    they meet them in the file. Other tensors first; the sort is stable."""
    found = re.match(r"blk\.(\d+)\.", tensor.name)
    return int(found.group(1)) if found else -1


def _apply_mix(
    outtype: OutType, planned: list[PlannedTensor], n_layers: int
) -> list[PlannedTensor]:
    chosen = mix_types(outtype, [(tensor.name, tensor.shape) for tensor in planned], n_layers)
    return [
        tensor if ggml_type is None else replace(tensor, ggml_type=ggml_type)
        for tensor, ggml_type in zip(planned, chosen, strict=True)
    ]


def export_model(
    model_dir: Path,
    out: Path,
    *,
    outtype: OutType,
    overwrite: bool,
    name: str | None,
    progress: ProgressCallback | None,
    merge: Merger | None = None,
) -> tuple[ModelSpec, TokenizerSummary, int, int]:
    """Write ``model_dir`` as a GGUF model; return (spec, tokenizer, tensor count, bytes).

    ``merge`` (``composer.export._merge``) adds an adapter to each weight it adapts.
    """
    check_output(out, overwrite)
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise InvalidBaseModel(f"no config.json in {model_dir}")
    spec = read_model_spec(config_file)
    tensors = _plan(model_dir, spec, outtype, merge)
    tokenizer = read_tokenizer(model_dir, spec.vocab_size)

    writer = GGUFWriter(None, spec.arch_name)
    writer.add_type(GGUFType.MODEL)
    # llama.cpp sets the tokens' rstrip by this name (composer/export/_phi3_rule.py)
    writer.add_name(llama_cpp_name(name or model_dir.resolve().name, tokenizer.phi3_rule))
    spec.add_hyperparameters(writer)
    writer.add_file_type(file_type(outtype))
    writer.add_quantization_version(GGML_QUANT_VERSION)
    tokenizer.write(writer)
    size = write_gguf(writer, out, tensors, progress=progress)
    return spec, tokenizer.summary, len(tensors), size
