"""What the architecture tests share: the adapters they train on each architecture, and
transformers + PEFT's and llama.cpp's greedy continuations to compare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tests.support.factories import ALL_PROJECTIONS, build_lora_adapter
from tests.support.llama_cpp import load_llama_cpp

# PEFT target_modules as one writes them for each: Phi-3's projections are fused
TARGETS = {
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    "gemma": ALL_PROJECTIONS,
    "gemma2": ALL_PROJECTIONS,
}
# Hugging Face module -> llama.cpp tensor, as convert_hf_to_gguf.py names them
GGUF_NAMES = {
    "self_attn.qkv_proj": "attn_qkv",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_up_proj": "ffn_up",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
NEW_TOKENS = 8


def architecture_of(model_dir: Path) -> str:
    config = json.loads((model_dir / "config.json").read_text())
    return str(config["model_type"])


def train_adapter(model_dir: Path, out: Path, seed: int = 3) -> Path:
    """A real PEFT LoRA on the architecture's projections (r 8, alpha 32)."""
    targets = TARGETS[architecture_of(model_dir)]
    return build_lora_adapter(model_dir, out, r=8, lora_alpha=32, target_modules=targets, seed=seed)


def peft_model(model_dir: Path, adapter_dir: Path) -> Any:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return PeftModel.from_pretrained(base, str(adapter_dir)).eval()


def peft_deltas(model_dir: Path, adapter_dir: Path) -> dict[str, np.ndarray]:
    """blk.N.<gguf name> -> the delta PEFT itself applies (``get_delta_weight``)."""
    model = peft_model(model_dir, adapter_dir)
    deltas: dict[str, np.ndarray] = {}
    for name, module in model.named_modules():
        if not hasattr(module, "get_delta_weight") or "layers." not in name:
            continue
        layer = int(name.split("layers.")[1].split(".")[0])
        hf_module = ".".join(name.split(".")[-2:])
        with torch.no_grad():
            delta = module.get_delta_weight("default").float().numpy()
        deltas[f"blk.{layer}.{GGUF_NAMES[hf_module]}"] = delta
    return deltas


def transformers_greedy(model: Any, ids: list[int]) -> tuple[list[int], np.ndarray]:
    """Greedy tokens and the last prompt position's logits of a transformers model."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1].numpy()
        output = model.generate(
            torch.tensor([ids]),
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=2,
        )
    return output[0, len(ids) :].tolist(), logits


def llama_cpp_greedy(
    model: Path, ids: list[int], adapter: Path | None = None
) -> tuple[list[int], np.ndarray]:
    """The same from llama.cpp running ``model`` (with ``adapter`` applied, if given)."""
    llama_cpp = load_llama_cpp()
    options: dict[str, Any] = {"n_ctx": 128, "n_threads": 1, "verbose": False, "seed": 0}
    if adapter is not None:
        options["lora_path"] = str(adapter)
    llm = llama_cpp.Llama(model_path=str(model), logits_all=True, **options)
    llm.eval(ids)
    first = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    generated: list[int] = []
    for _ in range(NEW_TOKENS):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        generated.append(token)
        llm.eval([token])
    llm.close()
    return generated, first
