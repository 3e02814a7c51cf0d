"""Which Hugging Face architectures export to GGUF, and their llama.cpp hyperparameters."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from gguf import MODEL_ARCH, MODEL_ARCH_NAMES, GGUFWriter, RopeScalingType, get_tensor_name_map

from composer.errors import InvalidBaseModel
from composer.export.errors import UnsupportedArchitecture, UnsupportedModel

__all__ = ["SUPPORTED_ARCHITECTURES", "ModelSpec", "read_model_spec"]

# Hugging Face class -> (llama.cpp architecture, whether q/k rows are permuted), as in
# llama.cpp's convert_hf_to_gguf.py: Mistral converts as "llama"; Qwen2 keeps NeoX rope order.
_ARCHITECTURES: dict[str, tuple[MODEL_ARCH, bool]] = {
    "LlamaForCausalLM": (MODEL_ARCH.LLAMA, True),
    "MistralForCausalLM": (MODEL_ARCH.LLAMA, True),
    "Qwen2ForCausalLM": (MODEL_ARCH.QWEN2, False),
}
SUPPORTED_ARCHITECTURES: tuple[str, ...] = tuple(_ARCHITECTURES)


@dataclass(frozen=True)
class ModelSpec:
    """The hyperparameters of a base model that a GGUF file and its tensor names need."""

    hf_architecture: str
    arch: MODEL_ARCH
    permute_qk: bool
    n_layers: int
    hidden_size: int
    intermediate_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    context_length: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: dict[str, Any] | None
    vocab_size: int
    tie_word_embeddings: bool

    @property
    def arch_name(self) -> str:
        return MODEL_ARCH_NAMES[self.arch]

    def gguf_name(self, hf_tensor: str) -> str | None:
        """llama.cpp's name for a Hugging Face tensor name (``model.layers.0...weight``)."""
        names = get_tensor_name_map(self.arch, self.n_layers)
        found = names.get_name(hf_tensor, try_suffixes=(".weight", ".bias"))
        return str(found) if found is not None else None

    def permute_rows(
        self, hf_tensor: str, rows: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """Reorder q/k output rows from Hugging Face's rotate-half rope to llama.cpp's.

        The same reshape as ``LlamaModel.permute`` in convert_hf_to_gguf.py, applied to
        the first axis of a weight, a bias or a LoRA B factor.
        """
        if not self.permute_qk:
            return rows
        if ".q_proj." in hf_tensor:
            heads = self.n_heads
        elif ".k_proj." in hf_tensor:
            heads = self.n_kv_heads
        else:
            return rows
        shape = rows.shape
        grouped = rows.reshape(heads, 2, shape[0] // heads // 2, *shape[1:])
        return np.ascontiguousarray(grouped.swapaxes(1, 2).reshape(shape))

    def add_hyperparameters(self, writer: GGUFWriter) -> None:
        """The ``{arch}.*`` keys of llama.cpp's LlamaModel / Qwen2Model conversion."""
        writer.add_vocab_size(self.vocab_size)
        writer.add_context_length(self.context_length)
        writer.add_embedding_length(self.hidden_size)
        writer.add_feed_forward_length(self.intermediate_size)
        writer.add_block_count(self.n_layers)
        writer.add_head_count(self.n_heads)
        writer.add_head_count_kv(self.n_kv_heads)
        writer.add_key_length(self.head_dim)
        writer.add_value_length(self.head_dim)
        writer.add_rope_dimension_count(self.head_dim)
        writer.add_rope_freq_base(self.rope_theta)
        writer.add_layer_norm_rms_eps(self.rms_norm_eps)
        if self.rope_scaling is not None and self.rope_scaling["rope_type"] == "linear":
            writer.add_rope_scaling_type(RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(float(self.rope_scaling["factor"]))

    def rope_freqs(self) -> npt.NDArray[np.float32] | None:
        """Llama 3.1's ``rope_freqs`` factors (``generate_extra_tensors`` in the converter)."""
        if self.rope_scaling is None or self.rope_scaling["rope_type"] != "llama3":
            return None
        scaling = self.rope_scaling
        factor = float(scaling.get("factor", 8.0))
        low = float(scaling.get("low_freq_factor", 1.0))
        high = float(scaling.get("high_freq_factor", 4.0))
        old_context = float(scaling.get("original_max_position_embeddings", 8192))
        low_wavelen, high_wavelen = old_context / low, old_context / high
        factors: list[float] = []
        for i in range(0, self.head_dim, 2):
            freq = 1.0 / (self.rope_theta ** (i / self.head_dim))
            wavelen = 2 * math.pi / freq
            if wavelen < high_wavelen:
                factors.append(1.0)
            elif wavelen > low_wavelen:
                factors.append(factor)
            else:
                smooth = (old_context / wavelen - low) / (high - low)
                factors.append(1.0 / ((1 - smooth) / factor + smooth))
        return np.asarray(factors, dtype=np.float32)


def _rope(config: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """Rope theta and scaling from either transformers 4 (rope_theta, rope_scaling) or 5
    (rope_parameters) config spellings."""
    parameters = config.get("rope_parameters")
    if isinstance(parameters, dict) and "full_attention" in parameters:
        parameters = parameters["full_attention"]
    parameters = parameters if isinstance(parameters, dict) else {}
    theta = float(parameters.get("rope_theta", config.get("rope_theta", 10000.0)))
    scaling = config.get("rope_scaling") or parameters
    rope_type = str(scaling.get("rope_type", scaling.get("type", "default")) or "default")
    if rope_type == "default":
        return theta, None
    if rope_type not in ("linear", "llama3"):
        raise UnsupportedModel(
            f"rope scaling {rope_type!r} is not supported by the GGUF export "
            "(supported: none, linear, llama3)"
        )
    return theta, {**scaling, "rope_type": rope_type}


def read_model_spec(config_file: Path) -> ModelSpec:
    """Read a Hugging Face ``config.json`` and refuse architectures the export cannot map."""
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidBaseModel(f"unreadable model config {config_file}: {error}") from None
    if not isinstance(config, dict):
        raise InvalidBaseModel(f"{config_file} is not a JSON object")
    architectures = config.get("architectures") or []
    architecture = str(architectures[0]) if architectures else str(config.get("model_type"))
    if architecture not in _ARCHITECTURES:
        raise UnsupportedArchitecture(
            f"architecture {architecture} cannot be exported to GGUF; supported: "
            + ", ".join(SUPPORTED_ARCHITECTURES)
        )
    arch, permute_qk = _ARCHITECTURES[architecture]
    try:
        hidden = int(config["hidden_size"])
        n_heads = int(config["num_attention_heads"])
        theta, scaling = _rope(config)
        if scaling is not None and scaling["rope_type"] == "llama3" and arch != MODEL_ARCH.LLAMA:
            raise UnsupportedModel(f"llama3 rope scaling is not supported for {architecture}")
        return ModelSpec(
            hf_architecture=architecture,
            arch=arch,
            permute_qk=permute_qk,
            n_layers=int(config["num_hidden_layers"]),
            hidden_size=hidden,
            intermediate_size=int(config["intermediate_size"]),
            n_heads=n_heads,
            n_kv_heads=int(config.get("num_key_value_heads") or n_heads),
            head_dim=int(config.get("head_dim") or hidden // n_heads),
            context_length=int(config.get("max_position_embeddings", 2048)),
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=theta,
            rope_scaling=scaling,
            vocab_size=int(config["vocab_size"]),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidBaseModel(f"{config_file} lacks a usable hyperparameter: {error}") from None
