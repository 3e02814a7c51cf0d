"""Per-module computation: from the inputs' factors to the method's delta or factors."""

from __future__ import annotations

from typing import Literal

import torch

from composer.adapters import FactorReader
from composer.blocks import DeltaSource, ModuleBuffers
from composer.lowrank import LowRankFactors, RankSpec, reduce_dense, reduce_stacked, stack_factors
from composer.methods import (
    DeltaMethod,
    InputParameters,
    LowRankMethod,
    MergeMethod,
    SharedParameters,
    module_seed,
)
from composer.recipe import Recipe

__all__ = [
    "input_parameters",
    "module_delta",
    "module_factors",
    "shared_parameters",
]


def input_parameters(recipe: Recipe) -> list[InputParameters]:
    """Each input's parameters, per-input values overriding the global ones."""
    shared = recipe.parameters
    return [
        InputParameters(
            weight=item.weight,
            density=item.density if item.density is not None else shared.density,
            epsilon=item.epsilon if item.epsilon is not None else shared.epsilon,
            gamma=item.gamma if item.gamma is not None else shared.gamma,
        )
        for item in recipe.inputs
    ]


def shared_parameters(recipe: Recipe) -> SharedParameters:
    parameters = recipe.parameters
    return SharedParameters(
        lambda_=parameters.lambda_,
        normalize=parameters.normalize,
        rescale=parameters.rescale,
        int8_mask=parameters.int8_mask,
        consensus_method=parameters.consensus_method,
    )


def _stacked(
    method: LowRankMethod,
    reader: FactorReader,
    module: str,
    inputs: list[InputParameters],
    shared: SharedParameters,
) -> tuple[torch.Tensor, torch.Tensor]:
    coefficients = method.coefficients(inputs, shared)
    contributions = [
        (coefficients[index] * scale, a, b) for index, scale, a, b in reader.contributions(module)
    ]
    return stack_factors(contributions)


def _dense(
    method: DeltaMethod,
    reader: FactorReader,
    module: str,
    shape: tuple[int, int],
    inputs: list[InputParameters],
    shared: SharedParameters,
    seed: int,
    device: torch.device,
    buffers: ModuleBuffers | None = None,
) -> torch.Tensor:
    sources = [DeltaSource(shape=shape, device=device) for _ in inputs]
    for index, scale, a, b in reader.contributions(module):
        sources[index] = DeltaSource(shape=shape, device=device, a=a, b=b, scale=scale)
    return method.merge(sources, inputs, shared, seed=module_seed(seed, module), buffers=buffers)


def module_delta(
    method: MergeMethod,
    reader: FactorReader,
    module: str,
    shape: tuple[int, int],
    recipe: Recipe,
    device: torch.device,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The delta the method defines for ``module`` (float32, on ``device``).

    Exact methods give it as stacked factors ``(B_s, A_s)``; sparse ones as a
    dense tensor.
    """
    inputs, shared = input_parameters(recipe), shared_parameters(recipe)
    if isinstance(method, LowRankMethod):
        a_s, b_s = _stacked(method, reader, module, inputs, shared)
        return b_s, a_s
    assert isinstance(method, DeltaMethod)
    return _dense(method, reader, module, shape, inputs, shared, recipe.parameters.seed, device)


def module_factors(
    method: MergeMethod,
    reader: FactorReader,
    module: str,
    shape: tuple[int, int],
    recipe: Recipe,
    device: torch.device,
    buffers: ModuleBuffers | None = None,
) -> LowRankFactors:
    """Low-rank factors of the method's delta for ``module`` at the recipe's rank.

    ``buffers`` (one per composition) hold the module-sized dense delta of a sparse
    method from one module to the next; the factors returned never alias them.
    """
    inputs, shared = input_parameters(recipe), shared_parameters(recipe)
    spec: RankSpec = recipe.output.effective_rank
    if isinstance(method, LowRankMethod):
        a_s, b_s = _stacked(method, reader, module, inputs, shared)
        return reduce_stacked(a_s, b_s, spec)
    assert isinstance(method, DeltaMethod)
    seed = recipe.parameters.seed
    delta = _dense(method, reader, module, shape, inputs, shared, seed, device, buffers)
    svd: Literal["exact", "randomized"] = recipe.output.svd
    return reduce_dense(delta, spec, svd=svd, seed=module_seed(seed + 1, module))
