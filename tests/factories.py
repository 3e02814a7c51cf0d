"""Builders of tiny real models and real PEFT adapters; nothing is downloaded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

TINY_LLAMA: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 128,
    "max_position_embeddings": 128,
}

ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def build_tiny_llama(out: Path, seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    """Save a random-weight Llama (transformers' own class) as a HF model directory."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(**TINY_LLAMA, dtype=dtype)
    model = LlamaForCausalLM(config)
    torch.nn.Module.to(model, dtype)
    model.save_pretrained(out, safe_serialization=True)
    return out


def load_tiny_llama(path: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return model


def build_lora_adapter(
    base_dir: Path,
    out: Path,
    *,
    r: int = 8,
    lora_alpha: int = 16,
    target_modules: Sequence[str] = ("q_proj", "v_proj"),
    use_rslora: bool = False,
    seed: int = 1,
    rank_pattern: dict[str, int] | None = None,
) -> Path:
    """A real PEFT LoRA adapter with non-zero A and B, saved with ``save_pretrained``."""
    from peft import LoraConfig, get_peft_model

    base = load_tiny_llama(base_dir)
    torch.manual_seed(seed)
    config = LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        target_modules=list(target_modules),
        use_rslora=use_rslora,
        rank_pattern=rank_pattern or {},
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, config)
    model.peft_config["default"].base_model_name_or_path = str(base_dir)
    model.save_pretrained(str(out))
    return out
