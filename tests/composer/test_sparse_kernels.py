"""Lorry's sparse kernels against mergekit's merge_tensors on the same tensors and seed."""

from __future__ import annotations

from typing import Any

import mergekit.sparsify
import pytest
import torch
from mergekit.merge_methods import merge_tensors
from mergekit.sparsify import RescaleNorm

import composer.blocks
import composer.select
from composer.blocks import DeltaSource
from composer.methods import InputParameters, SharedParameters, get_method
from composer.methods.task_arithmetic import SparseTaskArithmetic
from composer.select import magnitude_bits, select_top

EXTRA: dict[str, dict[str, float]] = {
    "ties": {},
    "dare_linear": {},
    "dare_ties": {},
    "magnitude_prune": {},
    "breadcrumbs": {"gamma": 0.02},
    "breadcrumbs_ties": {"gamma": 0.02},
    "della": {"epsilon": 0.1},
    "della_linear": {"epsilon": 0.1},
}
SHARED = {
    "defaults": SharedParameters(),
    "no-rescale-count": SharedParameters(rescale=False, normalize=True, consensus_method="count"),
    "lambda-normalize": SharedParameters(rescale=False, normalize=True, lambda_=0.7),
    "int8": SharedParameters(rescale=False, normalize=False, int8_mask=True),
}


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 4096 elements, so every test tensor spans many blocks."""
    monkeypatch.setattr(composer.blocks, "_CPU_BLOCK_ELEMENTS", 1 << 12)


def _exact_l1_rescale(
    tensor: torch.Tensor, mask: torch.Tensor, norm: RescaleNorm | None, eps: float = 1e-7
) -> torch.Tensor:
    """mergekit's rescaled_masked_tensor with its L1 norms summed in float64 (see sparsify.py)."""
    masked = tensor * mask
    if norm is None:
        return masked
    assert norm == RescaleNorm.l1
    before = tensor.abs().double().sum().float()
    after = masked.abs().double().sum().float()
    if before < eps or after < eps:
        return masked
    return masked * (before / after)


def _merge_both(
    method: str, deltas: list[torch.Tensor], shared: SharedParameters, seed: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    composer_method = get_method(method)
    assert isinstance(composer_method, SparseTaskArithmetic)
    weights, densities = [1.0, -0.6, 0.3][: len(deltas)], [0.5, 0.8, 0.3][: len(deltas)]
    inputs = [
        InputParameters(weight=weight, density=density, **EXTRA[method])
        for weight, density in zip(weights, densities, strict=True)
    ]
    sources = [DeltaSource.of_tensor(delta) for delta in deltas]
    ours = composer_method.merge(sources, inputs, shared, seed=seed)
    torch.manual_seed(seed)
    theirs = merge_tensors(
        [torch.zeros_like(deltas[0]), *deltas],
        composer_method.mergekit_method(shared.consensus_method),
        parameters=composer_method.mergekit_parameters(inputs, shared),
        base_index=0,
    )
    return ours, theirs


@pytest.mark.parametrize("shared_name", sorted(SHARED))
@pytest.mark.parametrize("method", sorted(EXTRA))
@pytest.mark.parametrize("count", [2, 3])
def test_kernels_are_bit_identical_to_mergekit(
    method: str, shared_name: str, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = SHARED[shared_name]
    if shared.consensus_method and get_method(method).name in (
        "dare_linear",
        "magnitude_prune",
        "breadcrumbs",
        "della_linear",
    ):
        pytest.skip("no sign consensus in this method")
    # Rescaled methods: mergekit's float32 L1 sums depend on its thread split; ours are
    # float64 sums rounded once, so compare with mergekit summing in float64 too.
    monkeypatch.setattr(mergekit.sparsify, "rescaled_masked_tensor", _exact_l1_rescale)
    generator = torch.Generator().manual_seed(count)
    deltas = [torch.randn(97, 203, generator=generator) * (1 + i) for i in range(count)]
    ours, theirs = _merge_both(method, deltas, shared)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("method", ["dare_ties", "della", "ties"])
def test_rescaled_results_differ_from_plain_mergekit_by_its_float32_norm_rounding(
    method: str,
) -> None:
    generator = torch.Generator().manual_seed(1)
    deltas = [torch.randn(128, 256, generator=generator) for _ in range(2)]
    shared = SharedParameters(rescale=True)
    ours, theirs = _merge_both(method, deltas, shared)
    assert torch.equal(ours == 0, theirs == 0)
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=0)


def _ties_tensor(generator: torch.Generator, shape: tuple[int, int]) -> torch.Tensor:
    """Integer-valued deltas: many exact zeros and many equal magnitudes."""
    return torch.randint(-3, 4, shape, generator=generator).float()


@pytest.mark.parametrize("portable", [False, True])
@pytest.mark.parametrize("k", [1, 700, 4000, 5000, 9000, 12000])
def test_top_set_keeps_exactly_k_with_earlier_elements_first_among_ties(
    k: int, portable: bool
) -> None:
    tensor = _ties_tensor(torch.Generator().manual_seed(k), (60, 200))
    source = DeltaSource.of_tensor(tensor)

    def blocks() -> Any:
        for start in range(0, 60, 7):
            stop = min(60, start + 7)
            block = source.rows(start, stop, torch.empty(stop - start, 200))
            yield start, stop, magnitude_bits(block, torch.empty_like(block))

    (top,) = select_top([k], tensor.numel(), tensor.device, blocks, portable=portable)
    top.start_pass()
    kept = torch.cat([top.keep(bits) for _, _, bits in blocks()]).reshape(-1)
    order = torch.sort(tensor.abs().reshape(-1), descending=True, stable=True).indices
    expected = torch.zeros(tensor.numel(), dtype=torch.bool)
    expected[order[:k]] = True
    assert int(kept.sum()) == k
    assert torch.equal(kept, expected)


def _sparsify_one(method: str, delta: torch.Tensor, density: float) -> torch.Tensor:
    """One input's sparsified delta by Lorry's kernels (weight 1, no normalisation)."""
    composer_method = get_method(method)
    assert isinstance(composer_method, SparseTaskArithmetic)
    inputs = [InputParameters(weight=1.0, density=density, **EXTRA[method])]
    shared = SharedParameters(rescale=False, normalize=False)
    return composer_method.merge([DeltaSource.of_tensor(delta)], inputs, shared, seed=0)


@pytest.mark.parametrize("density", [0.2, 0.45, 0.7])
def test_ties_at_a_nonzero_threshold_differ_from_mergekit_only_in_which_tie_is_kept(
    density: float,
) -> None:
    delta = _ties_tensor(torch.Generator().manual_seed(3), (64, 300))
    ours = _sparsify_one("magnitude_prune", delta, density).reshape(-1)
    theirs = (mergekit.sparsify.magnitude(delta, density) + 0.0).reshape(-1)
    magnitudes = delta.abs().reshape(-1)
    k = int(density * delta.numel())
    threshold = torch.sort(magnitudes, descending=True).values[k - 1]
    assert threshold > 0
    clear = magnitudes != threshold
    assert torch.equal(ours[clear], theirs[clear])
    tied = torch.nonzero(~clear).reshape(-1)
    assert int((ours[tied] != 0).sum()) == int((theirs[tied] != 0).sum())
    kept_ties = int((ours[tied] != 0).sum())
    assert (ours[tied[:kept_ties]] != 0).all() and (ours[tied[kept_ties:]] == 0).all()


def test_breadcrumbs_ties_follow_the_same_rule() -> None:
    delta = _ties_tensor(torch.Generator().manual_seed(4), (50, 200))
    ours = _sparsify_one("breadcrumbs", delta, 0.5).reshape(-1)
    theirs = (mergekit.sparsify.magnitude_outliers(delta, 0.5, gamma=0.02) + 0.0).reshape(-1)
    n = delta.numel()
    order = torch.sort(delta.abs().reshape(-1), descending=True, stable=True).indices
    outliers, kept = int(0.02 * n), int(0.5 * n)
    expected = torch.zeros(n)
    expected[order[outliers : outliers + kept]] = delta.reshape(-1)[
        order[outliers : outliers + kept]
    ]
    assert torch.equal(ours, expected + 0.0)
    for magnitude in range(1, 4):
        assert int((ours.abs() == magnitude).sum()) == int((theirs.abs() == magnitude).sum())


@pytest.mark.parametrize("density", [0.3, 0.5, 0.9])
def test_magnitude_with_many_zeros_keeps_mergekits_values(density: float) -> None:
    """Ties at a zero threshold change nothing; above it, values equal mergekit's."""
    generator = torch.Generator().manual_seed(9)
    delta = torch.randn(80, 120, generator=generator)
    delta[torch.rand(80, 120, generator=generator) < 0.6] = 0.0
    ours = _sparsify_one("magnitude_prune", delta, density)
    theirs = mergekit.sparsify.magnitude(delta, density) + 0.0
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("method", ["ties", "magnitude_prune", "breadcrumbs_ties"])
@pytest.mark.parametrize("skewed", [False, True])
def test_sampled_threshold_bracket_gives_the_same_bits(
    method: str, skewed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sampled bracket (large modules on CPU) and its fallback select the same set.

    ``skewed``: the sampled rows (every 16th) are far larger than the rest, so the
    bracket estimated from them misses the threshold and the two-level select runs.
    """
    monkeypatch.setattr(composer.select, "SAMPLE_MIN", 1)
    generator = torch.Generator().manual_seed(11)
    deltas = [torch.randn(1024, 512, generator=generator) for _ in range(2)]
    if skewed:
        for delta in deltas:
            delta[::16] *= 1000
    ours, theirs = _merge_both(method, deltas, SharedParameters(rescale=False))
    assert torch.equal(ours, theirs)
    # many exact ties at a non-zero threshold: the same elements as without the sample
    tied = [_ties_tensor(generator, (1024, 512)), *deltas]
    sampled, _ = _merge_both(method, tied, SharedParameters(rescale=False))
    monkeypatch.setattr(composer.select, "SAMPLE_MIN", 1 << 62)
    assert torch.equal(_merge_both(method, deltas, SharedParameters(rescale=False))[0], ours)
    assert torch.equal(_merge_both(method, tied, SharedParameters(rescale=False))[0], sampled)
