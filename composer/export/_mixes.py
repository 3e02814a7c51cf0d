"""Per-tensor storage types of llama.cpp's quantization mixes (Q4_K_M, Q4_K_S ...).

A port of the parts of ``llama_tensor_get_type`` (``src/llama-quant.cpp``) that apply
to the dense models the export supports (no experts, no Falcon, no importance
matrix): which tensors are quantized at all, the extra bits the ``_m`` / ``_s`` mixes
give to ``output.weight``, some ``attn_v`` and some ``ffn_down`` layers, and
``tensor_type_fallback`` for rows that are not a whole number of blocks. Tensors
are visited in file order, as llama.cpp does: its layer counters depend on it.
"""

from __future__ import annotations

from collections.abc import Sequence

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

__all__ = ["K_MIXES", "mix_file_type", "mix_types"]

T = GGMLQuantizationType

# outtype -> (llama.cpp file type, the type of every quantizable tensor before the rules)
K_MIXES: dict[str, tuple[LlamaFileType, T]] = {
    "q4_0": (LlamaFileType.MOSTLY_Q4_0, T.Q4_0),
    "q4_k_s": (LlamaFileType.MOSTLY_Q4_K_S, T.Q4_K),
    "q4_k_m": (LlamaFileType.MOSTLY_Q4_K_M, T.Q4_K),
    "q5_k_m": (LlamaFileType.MOSTLY_Q5_K_M, T.Q5_K),
    "q6_k": (LlamaFileType.MOSTLY_Q6_K, T.Q6_K),
}

_FALLBACK = {T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0}


def _use_more_bits(layer: int, layers: int) -> bool:
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def _category(name: str) -> str:
    if name in ("output.weight", "token_embd.weight"):
        return name.split(".")[0]
    for marker in ("attn_qkv.weight", "attn_kv_b.weight", "attn_v.weight"):
        if marker in name:
            return "attn_v"
    for marker in ("ffn_down",):
        if marker in name:
            return marker
    return "other"


def _quantizable(name: str, shape: Sequence[int]) -> bool:
    """``tensor_allows_quantization`` for the tensors a dense model has."""
    return len(shape) >= 2 and name.endswith("weight") and "_norm.weight" not in name


def _fallback(wanted: T, columns: int) -> T:
    """``tensor_type_fallback``: a smaller block where a row is not whole blocks, else F16."""
    if columns % GGML_QUANT_SIZES[wanted][0] == 0:
        return wanted
    chosen = _FALLBACK.get(wanted, wanted)
    return chosen if columns % GGML_QUANT_SIZES[chosen][0] == 0 else T.F16


def mix_file_type(outtype: str) -> LlamaFileType:
    return K_MIXES[outtype][0]


def mix_types(
    outtype: str, tensors: Sequence[tuple[str, tuple[int, ...]]], n_layers: int
) -> list[T | None]:
    """The type of each ``(gguf name, numpy shape)`` under ``outtype``'s mix, in file order.

    ``None`` means the tensor is not quantized and keeps the type it is exported in.
    """
    file_type, default = K_MIXES[outtype]
    categories = [_category(name) for name, _ in tensors]
    tied = "output" not in categories
    n_attention_v = categories.count("attn_v")
    i_attention_v = i_ffn_down = 0
    chosen: list[T | None] = []
    for (name, shape), category in zip(tensors, categories, strict=True):
        if not _quantizable(name, shape):
            chosen.append(None)
            continue
        columns = shape[-1]
        wanted = default
        if category == "output" or (tied and category == "token_embd"):
            if columns % GGML_QUANT_SIZES[default][0] != 0:
                wanted = T.Q8_0
            elif default != T.Q8_0:
                wanted = T.Q6_K
        elif category == "attn_v":
            if file_type in (
                LlamaFileType.MOSTLY_Q4_K_M,
                LlamaFileType.MOSTLY_Q5_K_M,
            ) and _use_more_bits(i_attention_v, n_attention_v):
                wanted = T.Q6_K
            elif file_type == LlamaFileType.MOSTLY_Q4_K_S and i_attention_v < 4:
                wanted = T.Q5_K
            i_attention_v += 1
        elif category == "ffn_down":
            if file_type in (
                LlamaFileType.MOSTLY_Q4_K_M,
                LlamaFileType.MOSTLY_Q5_K_M,
            ) and _use_more_bits(i_ffn_down, n_layers):
                wanted = T.Q6_K
            elif file_type == LlamaFileType.MOSTLY_Q4_K_S and i_ffn_down < n_layers // 8:
                wanted = T.Q5_K
            i_ffn_down += 1
        chosen.append(_fallback(wanted, columns))
    return chosen
