"""Merged model outputs: transformers loads them and they match PEFT's merge_and_unload."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from composer import compose
from tests.composer.helpers import INPUT_IDS, combine, peft_deltas
from tests.support.factories import load_tiny_llama
from tests.support.files import directory_files


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach() for name, tensor in model.state_dict().items()}


def test_merged_model_matches_peft_merge_and_unload(
    tmp_path: Path, tiny_llama_dir: Path, adapter_a: Path, adapter_b: Path
) -> None:
    from peft import PeftModel

    inputs = [
        {"adapter": str(adapter_a), "weight": 0.7},
        {"adapter": str(adapter_b), "weight": -0.3},
    ]
    compose({"method": "linear", "inputs": inputs}, tmp_path / "adapter")
    merged_recipe = {
        "method": "linear",
        "inputs": inputs,
        "output": {"type": "merged", "base": str(tiny_llama_dir)},
    }
    result = compose(merged_recipe, tmp_path / "merged")

    ours = load_tiny_llama(tmp_path / "merged")
    peft_model = PeftModel.from_pretrained(load_tiny_llama(tiny_llama_dir), tmp_path / "adapter")
    reference = peft_model.merge_and_unload()
    ours_state, reference_state = _state(ours), _state(reference)
    assert sorted(ours_state) == sorted(reference_state)
    for name, tensor in reference_state.items():
        torch.testing.assert_close(ours_state[name], tensor, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(
            ours(INPUT_IDS).logits, reference(INPUT_IDS).logits, atol=1e-5, rtol=1e-5
        )
    assert result.output_type == "merged" and all(m.error == 0.0 for m in result.modules)
    assert (tmp_path / "merged" / "config.json").is_file()
    assert (tmp_path / "merged" / "generation_config.json").is_file()


def test_negation_of_an_adapter_merged_with_it_gives_back_the_base(
    tmp_path: Path, tiny_llama_dir: Path, adapter_c: Path
) -> None:
    compose({"method": "negation", "inputs": [{"adapter": str(adapter_c)}]}, tmp_path / "neg")
    recipe = {
        "method": "linear",
        "inputs": [{"adapter": str(adapter_c)}, {"adapter": str(tmp_path / "neg")}],
        "output": {"type": "merged", "base": str(tiny_llama_dir)},
    }
    compose(recipe, tmp_path / "merged")

    base_state = _state(load_tiny_llama(tiny_llama_dir))
    merged_state = _state(load_tiny_llama(tmp_path / "merged"))
    for name, tensor in base_state.items():
        torch.testing.assert_close(merged_state[name], tensor, atol=1e-6, rtol=0)


def test_sharded_base_keeps_its_sharding_index_and_files_and_can_change_dtype(
    tmp_path: Path, sharded_llama_dir: Path, tiny_llama_dir: Path, adapter_a: Path
) -> None:
    recipe = {
        "method": "linear",
        "inputs": [{"adapter": str(adapter_a)}],
        "output": {"type": "merged", "base": str(sharded_llama_dir), "dtype": "bfloat16"},
    }
    compose(recipe, tmp_path / "merged")

    out = tmp_path / "merged"
    base_index = json.loads((sharded_llama_dir / "model.safetensors.index.json").read_text())
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(base_index["weight_map"].values())) > 1
    assert index["weight_map"] == base_index["weight_map"]
    for shard in set(index["weight_map"].values()):
        with safe_open(str(out / shard), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118
                assert handle.get_tensor(key).dtype == torch.bfloat16
    sizes = sum((out / shard).stat().st_size for shard in set(index["weight_map"].values()))
    assert index["metadata"]["total_size"] < sizes
    assert (out / "tokenizer.json").read_bytes() == (
        sharded_llama_dir / "tokenizer.json"
    ).read_bytes()
    assert (out / "tokenizer_config.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16"

    merged = load_tiny_llama(out)
    expected = combine((1.0, peft_deltas(tiny_llama_dir, adapter_a)))
    base_modules = dict(load_tiny_llama(tiny_llama_dir).named_modules())
    merged_modules = dict(merged.named_modules())
    for name, delta in expected.items():
        reference = (base_modules[name].weight.detach() + delta).to(torch.bfloat16).float()
        torch.testing.assert_close(merged_modules[name].weight.detach(), reference, atol=0, rtol=0)


def test_merged_ties_adds_the_ties_delta_to_the_base(
    tmp_path: Path, tiny_llama_dir: Path, adapter_a: Path, adapter_b: Path
) -> None:
    inputs = [{"adapter": str(adapter_a)}, {"adapter": str(adapter_b)}]
    common = {"method": "ties", "inputs": inputs, "parameters": {"density": 0.5}}
    compose({**common, "output": {"rank": "exact"}}, tmp_path / "adapter")
    compose(
        {**common, "output": {"type": "merged", "base": str(tiny_llama_dir)}}, tmp_path / "merged"
    )

    deltas = peft_deltas(tiny_llama_dir, tmp_path / "adapter")
    base_modules = dict(load_tiny_llama(tiny_llama_dir).named_modules())
    merged_modules = dict(load_tiny_llama(tmp_path / "merged").named_modules())
    for name, delta in deltas.items():
        expected = base_modules[name].weight.detach() + delta
        torch.testing.assert_close(
            merged_modules[name].weight.detach(), expected, atol=1e-5, rtol=1e-5
        )


def test_merged_output_is_byte_identical_across_runs(
    tmp_path: Path, sharded_llama_dir: Path, adapter_b: Path
) -> None:
    recipe = {
        "method": "dare_linear",
        "inputs": [{"adapter": str(adapter_b)}],
        "parameters": {"density": 0.5, "seed": 5},
        "output": {"type": "merged", "base": str(sharded_llama_dir)},
    }
    compose(recipe, tmp_path / "one")
    compose(recipe, tmp_path / "two")
    one = directory_files(tmp_path / "one")
    two = directory_files(tmp_path / "two")
    assert any(name.endswith(".safetensors") for name in one), sorted(one)
    assert sorted(one) == sorted(two), "both runs write the same files"
    for name, data in one.items():
        assert data == two[name], name
