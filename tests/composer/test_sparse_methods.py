"""Sparse methods run mergekit's own implementations on the true deltas of each module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from mergekit.merge_methods import merge_tensors

from composer import compose
from composer.methods import get_method, module_seed
from composer.methods.task_arithmetic import SparseTaskArithmetic
from tests.composer.helpers import peft_deltas

CASES: dict[str, dict[str, Any]] = {
    "ties": {"density": 0.5},
    "dare_linear": {"density": 0.6},
    "dare_ties": {"density": 0.6},
    "magnitude_prune": {"density": 0.4},
    "breadcrumbs": {"density": 0.8, "gamma": 0.02},
    "breadcrumbs_ties": {"density": 0.8, "gamma": 0.02},
    "della": {"density": 0.5, "epsilon": 0.1},
    "della_linear": {"density": 0.5, "epsilon": 0.1},
}


def _mergekit_reference(
    method: str,
    deltas: list[dict[str, torch.Tensor]],
    weights: list[float],
    densities: list[float],
    extra: dict[str, Any],
    seed: int,
) -> dict[str, torch.Tensor]:
    """mergekit's merge_tensors on the deltas PEFT computes, zero base, the composer's seeds."""
    composer_method = get_method(method)
    assert isinstance(composer_method, SparseTaskArithmetic)
    names = sorted(set().union(*deltas))
    out = {}
    for name in names:
        shape = next(d[name].shape for d in deltas if name in d)
        tensors = [d.get(name, torch.zeros(shape)) for d in deltas]
        parameters: dict[str, Any] = {"weight": weights, "density": densities}
        for key, value in extra.items():
            parameters[key] = [value] * len(weights) if key in ("gamma", "epsilon") else value
        torch.manual_seed(module_seed(seed, name))
        out[name] = merge_tensors(
            [torch.zeros(shape), *tensors],
            composer_method.mergekit_method(),
            parameters=parameters,
            base_index=0,
        )
    return out


@pytest.mark.parametrize("method", sorted(CASES))
def test_sparse_method_equals_mergekit_on_the_true_deltas(
    method: str,
    tmp_path: Path,
    tiny_llama_dir: Path,
    adapter_a: Path,
    adapter_b: Path,
) -> None:
    parameters = dict(CASES[method])
    density = parameters.pop("density")
    recipe = {
        "method": method,
        "inputs": [
            {"adapter": str(adapter_a), "weight": 1.0},
            {"adapter": str(adapter_b), "weight": 0.6, "density": 0.8},
        ],
        "parameters": {"density": density, "seed": 7, **parameters},
        "output": {"rank": "exact"},
    }
    result = compose(recipe, tmp_path / "out")

    reference = _mergekit_reference(
        method,
        [peft_deltas(tiny_llama_dir, adapter_a), peft_deltas(tiny_llama_dir, adapter_b)],
        [1.0, 0.6],
        [density, 0.8],
        parameters,
        seed=7,
    )
    got = peft_deltas(tiny_llama_dir, tmp_path / "out")
    assert sorted(got) == sorted(reference)
    for name, delta in reference.items():
        error = torch.linalg.matrix_norm(got[name] - delta) / torch.linalg.matrix_norm(delta)
        assert float(error) < 1e-4, name
    assert max(module.error for module in result.modules) < 1e-5


def test_ties_rank_r_error_is_the_optimum_for_the_ties_delta(
    tmp_path: Path, tiny_llama_dir: Path, adapter_a: Path, adapter_b: Path
) -> None:
    recipe = {
        "method": "ties",
        "inputs": [{"adapter": str(adapter_a)}, {"adapter": str(adapter_b)}],
        "parameters": {"density": 0.5},
        "output": {"rank": 6, "svd": "exact"},
    }
    result = compose(recipe, tmp_path / "out")

    reference = _mergekit_reference(
        "ties",
        [peft_deltas(tiny_llama_dir, adapter_a), peft_deltas(tiny_llama_dir, adapter_b)],
        [1.0, 1.0],
        [0.5, 0.5],
        {},
        seed=0,
    )
    got = peft_deltas(tiny_llama_dir, tmp_path / "out")
    for module in result.modules:
        s = torch.linalg.svdvals(reference[module.name].double())
        optimum = float(s[6:].square().sum().sqrt() / s.square().sum().sqrt())
        actual = torch.linalg.matrix_norm(got[module.name] - reference[module.name])
        actual = float(actual / torch.linalg.matrix_norm(reference[module.name]))
        assert module.rank == 6
        assert module.error == pytest.approx(optimum, rel=1e-3)
        assert actual == pytest.approx(optimum, rel=1e-3)


def test_randomized_svd_stays_close_to_the_optimum_and_reports_its_true_error(
    tmp_path: Path, tiny_llama_dir: Path, adapter_a: Path, adapter_b: Path
) -> None:
    base = {
        "method": "ties",
        "inputs": [{"adapter": str(adapter_a)}, {"adapter": str(adapter_b)}],
        "parameters": {"density": 0.5},
    }
    exact = compose({**base, "output": {"rank": 6, "svd": "exact"}}, tmp_path / "exact")
    randomized = compose({**base, "output": {"rank": 6, "svd": "randomized"}}, tmp_path / "rand")

    optimum = {module.name: module.error for module in exact.modules}
    got = peft_deltas(tiny_llama_dir, tmp_path / "rand")
    reference = peft_deltas(tiny_llama_dir, tmp_path / "exact")
    for module in randomized.modules:
        assert optimum[module.name] - 1e-6 <= module.error <= optimum[module.name] * 1.01
        assert module.rank == 6
        assert torch.linalg.matrix_rank(got[module.name]) <= 6
    assert sorted(got) == sorted(reference)


def test_dare_results_depend_on_the_seed(tmp_path: Path, adapter_a: Path, adapter_b: Path) -> None:
    def run(seed: int, name: str) -> bytes:
        recipe = {
            "method": "dare_linear",
            "inputs": [{"adapter": str(adapter_a)}, {"adapter": str(adapter_b)}],
            "parameters": {"density": 0.5, "seed": seed},
        }
        compose(recipe, tmp_path / name)
        return (tmp_path / name / "adapter_model.safetensors").read_bytes()

    assert run(1, "one") == run(1, "again")
    assert run(1, "one-b") != run(2, "two")
