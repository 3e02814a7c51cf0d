"""The published bytes do not depend on torch's thread count (issue 20)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
SHAPES = {"q_proj": (1536, 1024), "down_proj": (1024, 2560)}
RECIPES = {
    "ties": {"method": "ties", "parameters": {"density": 0.5}},
    "dare_ties": {"method": "dare_ties", "parameters": {"density": 0.6, "seed": 3}},
    "della": {"method": "della", "parameters": {"density": 0.5, "epsilon": 0.1}},
    "linear": {"method": "linear"},
}
_CHILD = """
import hashlib, json, sys
from pathlib import Path
import torch
torch.set_num_threads(int(sys.argv[1]))
from composer import compose
recipes = json.loads(Path(sys.argv[2]).read_text())
digests = {}
for name, recipe in recipes.items():
    out = Path(sys.argv[3]) / f"{name}-{sys.argv[1]}"
    compose(recipe, out)
    digests[name] = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.iterdir())
    }
print(json.dumps(digests))
"""


def _adapter(out: Path, seed: int, rank: int) -> Path:
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for projection, (rows, cols) in SHAPES.items():
        group = "mlp" if projection == "down_proj" else "self_attn"
        prefix = f"base_model.model.model.layers.0.{group}.{projection}"
        tensors[f"{prefix}.lora_A.weight"] = torch.randn(rank, cols, generator=generator) / 32
        tensors[f"{prefix}.lora_B.weight"] = torch.randn(rows, rank, generator=generator) / 50
    out.mkdir(parents=True)
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": 2 * rank,
        "target_modules": list(SHAPES),
        "base_model_name_or_path": "tests/llama",
        "bias": "none",
        "use_rslora": False,
        "use_dora": False,
    }
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out


def _digests(threads: int, recipes: Path, out: Path) -> dict[str, dict[str, str]]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("OMP_NUM_THREADS", None)
    env.pop("MKL_NUM_THREADS", None)
    command = [sys.executable, "-c", _CHILD, str(threads), str(recipes), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, dict[str, str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_sparse_and_reduced_rank_outputs_are_byte_identical_on_1_and_2_threads(
    tmp_path: Path,
) -> None:
    adapters = [_adapter(tmp_path / "a", 1, 8), _adapter(tmp_path / "b", 2, 16)]
    recipes = {
        name: {
            **recipe,
            "inputs": [{"adapter": str(adapters[0])}, {"adapter": str(adapters[1]), "weight": 0.7}],
            "output": {"rank": 4},
            "device": "cpu",
        }
        for name, recipe in RECIPES.items()
    }
    recipe_file = tmp_path / "recipes.json"
    recipe_file.write_text(json.dumps(recipes))
    one = _digests(1, recipe_file, tmp_path / "out")
    two = _digests(2, recipe_file, tmp_path / "out")
    assert sorted(one) == sorted(RECIPES)
    assert one == two
