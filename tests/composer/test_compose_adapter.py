"""Adapter outputs of the exact methods, checked against PEFT on products B@A and logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from composer import ProgressEvent, compose
from tests.composer.helpers import (
    combine,
    logits_with_deltas,
    peft_deltas,
    peft_logits,
)


def _relative_error(reference: torch.Tensor, approximation: torch.Tensor) -> float:
    return float(
        torch.linalg.matrix_norm(reference - approximation) / torch.linalg.matrix_norm(reference)
    )


def test_exact_linear_gives_the_weighted_sum_of_deltas_in_peft(
    tmp_path: Path, tiny_llama_dir: Path, adapter_a: Path, adapter_b: Path
) -> None:
    recipe = {
        "method": "linear",
        "inputs": [
            {"adapter": str(adapter_a), "weight": 0.7},
            {"adapter": str(adapter_b), "weight": -0.3},
        ],
        "device": "cpu",
    }
    result = compose(recipe, tmp_path / "out")

    expected = combine(
        (0.7, peft_deltas(tiny_llama_dir, adapter_a)),
        (-0.3, peft_deltas(tiny_llama_dir, adapter_b)),
    )
    got = peft_deltas(tiny_llama_dir, tmp_path / "out")
    assert sorted(got) == sorted(expected)
    for name, delta in expected.items():
        torch.testing.assert_close(got[name], delta, atol=1e-5, rtol=1e-4)
    reference_logits = logits_with_deltas(tiny_llama_dir, expected)
    torch.testing.assert_close(
        peft_logits(tiny_llama_dir, tmp_path / "out"), reference_logits, atol=1e-4, rtol=1e-4
    )
    assert all(module.error == 0.0 for module in result.modules)


def test_exact_rank_is_the_sum_of_input_ranks_with_rank_pattern_honoured(
    tmp_path: Path, tiny_llama_dir: Path, adapter_a: Path, adapter_c: Path
) -> None:
    recipe = {
        "method": "linear",
        "inputs": [{"adapter": str(adapter_a)}, {"adapter": str(adapter_c)}],
    }
    result = compose(recipe, tmp_path / "out")

    ranks = {module.name: module.rank for module in result.modules}
    assert ranks["model.layers.0.self_attn.v_proj"] == 8 + 6
    assert ranks["model.layers.1.self_attn.v_proj"] == 8 + 2
    assert ranks["model.layers.0.self_attn.q_proj"] == 8
    assert ranks["model.layers.1.mlp.down_proj"] == 6
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert config["r"] == 14 and config["lora_alpha"] == 14 and config["use_rslora"] is False
    assert config["rank_pattern"]["model.layers.1.self_attn.v_proj"] == 10
    assert config["alpha_pattern"] == config["rank_pattern"]
    expected = combine(
        (1.0, peft_deltas(tiny_llama_dir, adapter_a)), (1.0, peft_deltas(tiny_llama_dir, adapter_c))
    )
    got = peft_deltas(tiny_llama_dir, tmp_path / "out")
    for name, delta in expected.items():
        torch.testing.assert_close(got[name], delta, atol=1e-5, rtol=1e-4)


def test_rank_r_output_reaches_the_eckart_young_optimum(
    tmp_path: Path, tiny_llama_dir: Path, adapter_a: Path, adapter_b: Path, adapter_c: Path
) -> None:
    inputs = [(adapter_a, 1.0), (adapter_b, 0.5), (adapter_c, -0.8)]
    recipe = {
        "method": "linear",
        "inputs": [{"adapter": str(path), "weight": weight} for path, weight in inputs],
        "output": {"rank": 5},
    }
    result = compose(recipe, tmp_path / "out")

    exact = combine(*[(weight, peft_deltas(tiny_llama_dir, path)) for path, weight in inputs])
    got = peft_deltas(tiny_llama_dir, tmp_path / "out")
    reported = {module.name: module for module in result.modules}
    for name, delta in exact.items():
        s = torch.linalg.svdvals(delta.double())
        rank = min(5, int((s > s[0] * 1e-6).sum()))
        optimum = float(s[rank:].square().sum().sqrt() / s.square().sum().sqrt())
        assert reported[name].rank == rank
        assert _relative_error(delta, got[name]) == pytest.approx(optimum, rel=1e-3, abs=1e-6)
        assert reported[name].error == pytest.approx(optimum, rel=1e-3, abs=1e-6)


def test_energy_threshold_picks_the_smallest_rank_holding_that_energy(
    tmp_path: Path, tiny_llama_dir: Path, adapter_a: Path, adapter_c: Path
) -> None:
    recipe = {
        "method": "linear",
        "inputs": [{"adapter": str(adapter_a)}, {"adapter": str(adapter_c), "weight": 0.5}],
        "output": {"rank": 0.9},
    }
    result = compose(recipe, tmp_path / "out")

    exact = combine(
        (1.0, peft_deltas(tiny_llama_dir, adapter_a)), (0.5, peft_deltas(tiny_llama_dir, adapter_c))
    )
    ranks = {module.name: module.rank for module in result.modules}
    for name, delta in exact.items():
        energy = torch.linalg.svdvals(delta.double()).square()
        captured = torch.cumsum(energy, 0) / energy.sum()
        expected_rank = int((captured < 0.9).sum()) + 1
        assert ranks[name] == expected_rank
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert config["r"] == max(ranks.values())
    got = peft_deltas(tiny_llama_dir, tmp_path / "out")
    for name, delta in exact.items():
        assert _relative_error(delta, got[name]) <= (1 - 0.9) ** 0.5 + 1e-6


def test_task_arithmetic_scales_the_weighted_sum_by_lambda(
    tmp_path: Path, tiny_llama_dir: Path, adapter_a: Path, adapter_b: Path
) -> None:
    recipe = {
        "method": "task_arithmetic",
        "inputs": [
            {"adapter": str(adapter_a), "weight": 1.0},
            {"adapter": str(adapter_b), "weight": 0.5},
        ],
        "parameters": {"lambda": 0.8},
    }
    compose(recipe, tmp_path / "out")

    expected = combine(
        (0.8, peft_deltas(tiny_llama_dir, adapter_a)), (0.4, peft_deltas(tiny_llama_dir, adapter_b))
    )
    got = peft_deltas(tiny_llama_dir, tmp_path / "out")
    for name, delta in expected.items():
        torch.testing.assert_close(got[name], delta, atol=1e-5, rtol=1e-4)


def test_negation_flips_the_delta_of_its_input(
    tmp_path: Path, tiny_llama_dir: Path, adapter_b: Path
) -> None:
    compose({"method": "negation", "inputs": [{"adapter": str(adapter_b)}]}, tmp_path / "out")

    expected = peft_deltas(tiny_llama_dir, adapter_b)
    got = peft_deltas(tiny_llama_dir, tmp_path / "out")
    for name, delta in expected.items():
        torch.testing.assert_close(got[name], -delta, atol=1e-6, rtol=1e-5)


def test_card_records_lineage_method_and_errors(
    tmp_path: Path, adapter_a: Path, adapter_b: Path
) -> None:
    from composer.fileio import sha256_file

    recipe = {
        "method": "linear",
        "inputs": [
            {"adapter": str(adapter_a), "weight": 1.0},
            {"adapter": str(adapter_b), "weight": -0.25},
        ],
        "output": {"rank": 4},
    }
    result = compose(recipe, tmp_path / "out")

    card = (tmp_path / "out" / "README.md").read_text()
    _, front, body = card.split("---", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "peft"
    assert "lorry" in meta["tags"] and "linear" in meta["tags"]
    assert (
        meta["base_model"]
        == json.loads((adapter_a / "adapter_config.json").read_text())["base_model_name_or_path"]
    )
    assert sha256_file(adapter_a / "adapter_model.safetensors") in body
    assert sha256_file(adapter_b / "adapter_model.safetensors") in body
    assert "-0.25" in body and "seed 0" in body and "mergekit" in body
    for module in result.modules:
        assert f"`{module.name}`" in body and f"{module.error:.3e}" in body
    record = json.loads((tmp_path / "out" / "lorry_composition.json").read_text())
    assert record["modules"]["model.layers.0.self_attn.q_proj"]["rank"] == 4


def test_same_recipe_gives_byte_identical_outputs(
    tmp_path: Path, adapter_a: Path, adapter_b: Path
) -> None:
    recipe = {
        "method": "dare_ties",
        "inputs": [{"adapter": str(adapter_a)}, {"adapter": str(adapter_b), "weight": 0.5}],
        "parameters": {"density": 0.6, "seed": 3},
        "output": {"rank": 4, "svd": "randomized"},
    }
    compose(recipe, tmp_path / "one")
    compose(recipe, tmp_path / "two")

    names = sorted(path.name for path in (tmp_path / "one").iterdir())
    assert names == sorted(path.name for path in (tmp_path / "two").iterdir())
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), (
            name
        )


def test_progress_reports_every_module_in_order(
    tmp_path: Path, adapter_a: Path, adapter_b: Path
) -> None:
    events: list[ProgressEvent] = []
    recipe = {
        "method": "linear",
        "inputs": [{"adapter": str(adapter_a)}, {"adapter": str(adapter_b)}],
    }
    result = compose(recipe, tmp_path / "out", progress=events.append)

    assert [event.done for event in events] == list(range(1, len(result.modules) + 1))
    assert all(event.total == len(result.modules) for event in events)
    assert [event.module for event in events] == [module.name for module in result.modules]


def test_alpha_pattern_of_an_input_is_honoured(
    tmp_path: Path, tiny_llama_dir: Path, adapter_a: Path
) -> None:
    import shutil

    patterned = tmp_path / "patterned"
    shutil.copytree(adapter_a, patterned)
    config = json.loads((patterned / "adapter_config.json").read_text())
    config["alpha_pattern"] = {"layers.0.self_attn.q_proj": 4}
    (patterned / "adapter_config.json").write_text(json.dumps(config))
    compose({"method": "linear", "inputs": [{"adapter": str(patterned)}]}, tmp_path / "out")

    expected = peft_deltas(tiny_llama_dir, patterned)
    got = peft_deltas(tiny_llama_dir, tmp_path / "out")
    original = peft_deltas(tiny_llama_dir, adapter_a)
    name = "model.layers.0.self_attn.q_proj"
    torch.testing.assert_close(expected[name], original[name] * 4 / 16)
    for key, delta in expected.items():
        torch.testing.assert_close(got[key], delta, atol=1e-6, rtol=1e-5)
