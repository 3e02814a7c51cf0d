"""Write a small PEFT LoRA adapter directory to try Lorry with; nothing is downloaded.

    python docs/examples/make_adapter.py ./out --seed 1

The adapter is what PEFT's ``save_pretrained`` writes for a LoRA on ``q_proj`` and
``v_proj``: ``adapter_config.json`` and ``adapter_model.safetensors`` with
``base_model.model.model.layers.N.self_attn.{q,v}_proj.lora_{A,B}.weight``. Its shapes
fit a tiny Llama (hidden size 64, 2 layers, 4 attention heads, 2 key-value heads: the
random-weight model the test suite builds with transformers), and its weights are random,
drawn from ``--seed``: different seeds give different adapters, the same seed the same bytes.
It needs only what ``pip install -e .`` installs (torch, safetensors).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

HIDDEN_SIZE = 64
LAYERS = 2
HEAD_DIM = 16
KEY_VALUE_HEADS = 2
MODULE_OUT = {"q_proj": HIDDEN_SIZE, "v_proj": KEY_VALUE_HEADS * HEAD_DIM}


def adapter_tensors(rank: int, seed: int) -> dict[str, torch.Tensor]:
    """Seeded random LoRA factors: A ``[rank, in]`` and B ``[out, rank]`` per module."""
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for layer in range(LAYERS):
        for module, out_features in MODULE_OUT.items():
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(
                rank, HIDDEN_SIZE, generator=generator
            ) / (HIDDEN_SIZE**0.5)
            tensors[f"{prefix}.lora_B.weight"] = 0.01 * torch.randn(
                out_features, rank, generator=generator
            )
    return tensors


def adapter_config(rank: int) -> dict[str, object]:
    """The fields PEFT writes for a LoRA adapter, with the values of this one."""
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": "./tiny-llama",
        "r": rank,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.0,
        "target_modules": sorted(MODULE_OUT),
        "bias": "none",
        "use_rslora": False,
        "use_dora": False,
        "fan_in_fan_out": False,
        "init_lora_weights": True,
        "modules_to_save": None,
        "rank_pattern": {},
        "alpha_pattern": {},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory to write (created)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank r")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(adapter_tensors(args.rank, args.seed), str(args.out / "adapter_model.safetensors"))
    config = json.dumps(adapter_config(args.rank), indent=2) + "\n"
    (args.out / "adapter_config.json").write_text(config)


if __name__ == "__main__":
    main()
