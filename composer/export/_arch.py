"""Which Hugging Face architectures export to GGUF, and their llama.cpp hyperparameters."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from gguf import MODEL_ARCH, MODEL_ARCH_NAMES, GGUFWriter, RopeScalingType, get_tensor_name_map

from composer.errors import InvalidBaseModel
from composer.export.errors import UnsupportedArchitecture, UnsupportedModel

__all__ = ["SUPPORTED_ARCHITECTURES", "ModelSpec", "read_model_spec"]


@dataclass(frozen=True)
class _Family:
    """How llama.cpp's convert_hf_to_gguf.py converts one Hugging Face class."""

    arch: MODEL_ARCH
    permute_qk: bool = False
    """q/k rows reordered for llama.cpp's rope (LlamaModel.permute)."""
    norm_shift: float = 0.0
    """Added to every ``*norm.weight``: Gemma's RMSNorm multiplies by ``1 + weight``,
    llama.cpp's by ``weight`` (GemmaModel.modify_tensors)."""
    drops_lm_head: bool = False
    """Gemma's converter skips ``lm_head.weight``: llama.cpp ties it to the embedding."""


# Mistral converts as "llama"; Qwen2 (and Qwen2.5, the same class) and Phi-3 keep NeoX rope
# order; Phi-3 keeps its fused qkv_proj (attn_qkv) and gate_up_proj (ffn_up, 2 x n_ff rows).
_FAMILIES: dict[str, _Family] = {
    "LlamaForCausalLM": _Family(MODEL_ARCH.LLAMA, permute_qk=True),
    "MistralForCausalLM": _Family(MODEL_ARCH.LLAMA, permute_qk=True),
    "Qwen2ForCausalLM": _Family(MODEL_ARCH.QWEN2),
    "Phi3ForCausalLM": _Family(MODEL_ARCH.PHI3),
    "GemmaForCausalLM": _Family(MODEL_ARCH.GEMMA, norm_shift=1.0, drops_lm_head=True),
    "Gemma2ForCausalLM": _Family(MODEL_ARCH.GEMMA2, norm_shift=1.0, drops_lm_head=True),
}
SUPPORTED_ARCHITECTURES: tuple[str, ...] = tuple(_FAMILIES)


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
    norm_shift: float = 0.0
    rope_dims: int | None = None
    """Rotated dimensions per head where not all are (Phi-3's partial_rotary_factor)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Architecture keys: Phi-3's original context, sliding window and LongRoPE
    factors; Gemma 2's softcaps and sliding window."""

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
        """The ``{arch}.*`` keys of llama.cpp's conversion of this architecture."""
        writer.add_vocab_size(self.vocab_size)
        writer.add_context_length(self.context_length)
        writer.add_embedding_length(self.hidden_size)
        writer.add_feed_forward_length(self.intermediate_size)
        writer.add_block_count(self.n_layers)
        writer.add_head_count(self.n_heads)
        writer.add_head_count_kv(self.n_kv_heads)
        writer.add_key_length(self.head_dim)
        writer.add_value_length(self.head_dim)
        writer.add_rope_dimension_count(self.rope_dims or self.head_dim)
        writer.add_rope_freq_base(self.rope_theta)
        writer.add_layer_norm_rms_eps(self.rms_norm_eps)
        if self.rope_scaling is not None and self.rope_scaling["rope_type"] == "linear":
            writer.add_rope_scaling_type(RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(float(self.rope_scaling["factor"]))
        extras = self.extras
        if self.arch == MODEL_ARCH.PHI3:
            writer.add_rope_scaling_orig_ctx_len(int(extras["original_context"]))
            writer.add_sliding_window(int(extras["sliding_window"]))
            if "rope_attn_factor" in extras:
                writer.add_rope_scaling_attn_factors(float(extras["rope_attn_factor"]))
        elif self.arch == MODEL_ARCH.GEMMA2:
            writer.add_attn_logit_softcapping(float(extras["attn_logit_softcapping"]))
            writer.add_final_logit_softcapping(float(extras["final_logit_softcapping"]))
            writer.add_sliding_window(int(extras["sliding_window"]))

    def extra_tensors(self) -> list[tuple[str, npt.NDArray[np.float32]]]:
        """Tensors the converter adds (``generate_extra_tensors``): Llama 3.1's
        ``rope_freqs``, Phi-3's LongRoPE ``rope_factors_long`` and ``rope_factors_short``."""
        if "rope_factors_long" in self.extras:
            return [
                (f"{name}.weight", np.asarray(self.extras[name], dtype=np.float32))
                for name in ("rope_factors_long", "rope_factors_short")
            ]
        if self.rope_scaling is None or self.rope_scaling["rope_type"] != "llama3":
            return []
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
        return [("rope_freqs.weight", np.asarray(factors, dtype=np.float32))]


_ROPE_TYPES: dict[MODEL_ARCH, tuple[str, ...]] = {
    MODEL_ARCH.LLAMA: ("linear", "llama3"),
    MODEL_ARCH.QWEN2: ("linear",),
    MODEL_ARCH.PHI3: ("longrope",),
}


def _rope(config: dict[str, Any], arch: MODEL_ARCH) -> tuple[float, dict[str, Any] | None]:
    """Rope theta and scaling from either transformers 4 (rope_theta, rope_scaling) or 5
    (rope_parameters) config spellings."""
    parameters = config.get("rope_parameters")
    if isinstance(parameters, dict) and "full_attention" in parameters:
        parameters = parameters["full_attention"]
    parameters = parameters if isinstance(parameters, dict) else {}
    theta = float(parameters.get("rope_theta", config.get("rope_theta", 10000.0)))
    scaling = config.get("rope_scaling") or parameters
    rope_type = str(scaling.get("rope_type", scaling.get("type", "default")) or "default")
    rope_type = "longrope" if rope_type == "su" else rope_type  # Phi-3's first name for it
    if rope_type == "default":
        return theta, None
    supported = _ROPE_TYPES.get(arch, ())
    if rope_type not in supported:
        raise UnsupportedModel(
            f"rope scaling {rope_type!r} is not supported by the GGUF export of "
            f"{MODEL_ARCH_NAMES[arch]} models (supported: {', '.join(('none', *supported))})"
        )
    return theta, {**parameters, **scaling, "rope_type": rope_type}


def _partial_rotary(config: dict[str, Any]) -> Any:
    """``partial_rotary_factor`` where transformers 4 (top level) or 5 (rope_parameters,
    kept there for the default rope too) writes it."""
    parameters = config.get("rope_parameters")
    if isinstance(parameters, dict) and "full_attention" in parameters:
        parameters = parameters["full_attention"]
    scaling = config.get("rope_scaling")
    for source in (config, parameters, scaling):
        if isinstance(source, dict) and source.get("partial_rotary_factor"):
            return source["partial_rotary_factor"]
    return None


def _phi3_extras(
    config: dict[str, Any], scaling: dict[str, Any] | None, rope_dims: int
) -> dict[str, Any]:
    """Phi3MiniModel's keys: the pre-training context, the sliding window (0: none) and,
    for LongRoPE (Phi-3.5, Phi-3 128k), its factors and attention factor as transformers
    computes it (``_compute_longrope_parameters``)."""
    scaling = scaling or {}
    original = int(
        config.get("original_max_position_embeddings")
        or scaling.get("original_max_position_embeddings")
        or config.get("max_position_embeddings", 4096)
    )
    extras: dict[str, Any] = {
        "original_context": original,
        "sliding_window": int(config.get("sliding_window") or 0),
    }
    if scaling.get("rope_type") != "longrope":
        return extras
    long, short = scaling.get("long_factor"), scaling.get("short_factor")
    if not isinstance(long, list) or not isinstance(short, list):
        raise UnsupportedModel("LongRoPE scaling without long_factor and short_factor lists")
    if len(long) != rope_dims // 2 or len(short) != rope_dims // 2:
        raise UnsupportedModel(
            f"LongRoPE factors have {len(long)} and {len(short)} values; the rotated "
            f"dimensions need {rope_dims // 2}"
        )
    factor = scaling.get("factor") or int(config["max_position_embeddings"]) / original
    attention = scaling.get("attention_factor")
    if attention is None:
        attention = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
    extras.update(rope_factors_long=long, rope_factors_short=short, rope_attn_factor=attention)
    return extras


def _gemma2_extras(config: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    """Gemma2Model's keys, after checking that llama.cpp's fixed choices fit this model:
    both softcaps always applied, sliding-window attention on even layers, and its
    query scale (1/sqrt(head_dim), or 1/sqrt(hidden/heads) for the 46-layer 27B)."""
    softcaps = {
        key: config.get(key) for key in ("attn_logit_softcapping", "final_logit_softcapping")
    }
    for key, value in softcaps.items():
        if value is None:
            raise UnsupportedModel(f"Gemma 2 without {key}: llama.cpp always applies it")
    scalar = float(config.get("query_pre_attn_scalar") or spec.head_dim)
    assumed = spec.hidden_size / spec.n_heads if spec.n_layers == 46 else spec.head_dim
    if scalar != assumed:
        raise UnsupportedModel(
            f"query_pre_attn_scalar {scalar:g}: llama.cpp scales queries by 1/sqrt({assumed:g}) "
            f"for a {spec.n_layers}-layer Gemma 2"
        )
    layer_types = config.get("layer_types")
    alternating = [
        "sliding_attention" if layer % 2 == 0 else "full_attention"
        for layer in range(spec.n_layers)
    ]
    if layer_types is not None and list(layer_types) != alternating:
        raise UnsupportedModel(
            "Gemma 2 layer_types other than sliding/full alternation (llama.cpp's pattern)"
        )
    if config.get("use_bidirectional_attention"):
        raise UnsupportedModel("Gemma 2 with bidirectional attention is not a causal LM")
    return {**softcaps, "sliding_window": int(config.get("sliding_window") or 4096)}


def _architecture(config: dict[str, Any]) -> tuple[str, _Family]:
    architectures = config.get("architectures") or []
    architecture = str(architectures[0]) if architectures else str(config.get("model_type"))
    if architecture not in _FAMILIES:
        raise UnsupportedArchitecture(
            f"architecture {architecture} cannot be exported to GGUF; supported: "
            + ", ".join(SUPPORTED_ARCHITECTURES)
        )
    return architecture, _FAMILIES[architecture]


def read_model_spec(config_file: Path) -> ModelSpec:
    """Read a Hugging Face ``config.json`` and refuse architectures the export cannot map."""
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidBaseModel(f"unreadable model config {config_file}: {error}") from None
    if not isinstance(config, dict):
        raise InvalidBaseModel(f"{config_file} is not a JSON object")
    architecture, family = _architecture(config)
    if family.drops_lm_head and config.get("tie_word_embeddings") is False:
        raise UnsupportedModel(
            f"{architecture} with tie_word_embeddings false: llama.cpp's "
            f"{MODEL_ARCH_NAMES[family.arch]} always computes the output from the token embedding"
        )
    try:
        hidden = int(config["hidden_size"])
        n_heads = int(config["num_attention_heads"])
        theta, scaling = _rope(config, family.arch)
        head_dim = int(config.get("head_dim") or hidden // n_heads)
        rotary = float(_partial_rotary(config) or 1.0)
        spec = ModelSpec(
            hf_architecture=architecture,
            arch=family.arch,
            permute_qk=family.permute_qk,
            n_layers=int(config["num_hidden_layers"]),
            hidden_size=hidden,
            intermediate_size=int(config["intermediate_size"]),
            n_heads=n_heads,
            n_kv_heads=int(config.get("num_key_value_heads") or n_heads),
            head_dim=head_dim,
            context_length=int(config.get("max_position_embeddings", 2048)),
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=theta,
            rope_scaling=scaling,
            vocab_size=int(config["vocab_size"]),
            tie_word_embeddings=family.drops_lm_head
            or bool(config.get("tie_word_embeddings", False)),
            norm_shift=family.norm_shift,
            rope_dims=int(rotary * hidden) // n_heads if rotary != 1.0 else None,
        )
        if family.arch == MODEL_ARCH.PHI3:
            extras = _phi3_extras(config, scaling, spec.rope_dims or head_dim)
            return replace(spec, extras=extras)
        if family.arch == MODEL_ARCH.GEMMA2:
            return replace(spec, extras=_gemma2_extras(config, spec))
        return spec
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidBaseModel(f"{config_file} lacks a usable hyperparameter: {error}") from None
