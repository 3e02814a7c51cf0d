"""LoRA deltas two ways: as PEFT applies them, and as llama.cpp applies a GGUF adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tests.export.reading import metadata, permute_like_llama_cpp, tensors
from tests.support.factories import TINY_LLAMA, load_tiny_llama

N_HEAD = TINY_LLAMA["num_attention_heads"]
N_KV_HEAD = TINY_LLAMA["num_key_value_heads"]
GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def peft_deltas(base_dir: Path, adapter_dir: Path) -> dict[str, np.ndarray]:
    """blk.N.<gguf name> -> the delta PEFT itself applies (``get_delta_weight``)."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_tiny_llama(base_dir), str(adapter_dir))
    deltas: dict[str, np.ndarray] = {}
    for layer in range(TINY_LLAMA["num_hidden_layers"]):
        for hf_name, gguf_name in GGUF_NAMES.items():
            module: Any = model.get_submodule(f"base_model.model.model.layers.{layer}.{hf_name}")
            if hasattr(module, "get_delta_weight"):
                with torch.no_grad():
                    delta = module.get_delta_weight("default").float().numpy()
                deltas[f"blk.{layer}.{gguf_name}"] = delta
    return deltas


def gguf_deltas(path: Path) -> dict[str, np.ndarray]:
    """blk.N.<name> -> the delta llama.cpp applies: alpha / rank * B @ A."""
    alpha = float(metadata(path)["adapter.lora.alpha"])
    read = tensors(path)
    deltas = {}
    for name, (_, a) in read.items():
        if name.endswith(".weight.lora_a"):
            base = name.removesuffix(".weight.lora_a")
            b = read[f"{base}.weight.lora_b"][1]
            deltas[base] = (alpha / a.shape[0]) * (b @ a)
    return deltas


def expected_in_gguf_layout(name: str, delta: np.ndarray) -> np.ndarray:
    if name.endswith("attn_q"):
        return permute_like_llama_cpp(delta, N_HEAD)
    if name.endswith("attn_k"):
        return permute_like_llama_cpp(delta, N_KV_HEAD)
    return delta
