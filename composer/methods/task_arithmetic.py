"""Task arithmetic and its sparse relatives (TIES, DARE, DELLA, ...).

Plain task arithmetic is a weighted sum, so it stays exact and low rank. The
sparse methods are configurations of mergekit's ``GeneralizedTaskArithmeticMerge``
(its parameters, defaults and semantics, with a zero base), computed by Lorry's
own kernels (``composer.sparse_merge``, ``composer.sparsify``) on the true deltas
of one module, formed a block of rows at a time. ``mergekit_method`` and
``mergekit_parameters`` give the equivalent ``merge_tensors`` call, which the
tests run side by side.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from mergekit.merge_methods.generalized_task_arithmetic import (
    ConsensusMethod,
    GeneralizedTaskArithmeticMerge,
)
from mergekit.sparsify import SparsificationMethod

from composer.blocks import DeltaSource, ModuleBuffers
from composer.methods.base import (
    DeltaMethod,
    InputParameters,
    LowRankMethod,
    SharedParameters,
)
from composer.methods.linear import normalised_weights
from composer.sparse_merge import SparseConfig, merge_sparse

__all__ = ["SparseTaskArithmetic", "TaskArithmeticMethod"]

_SPARSE_SHARED = frozenset({"density", "lambda", "normalize", "rescale", "int8_mask"})


class TaskArithmeticMethod(LowRankMethod):
    """``lambda * sum_i w_i * dW_i``, as mergekit's ``task_arithmetic`` with a zero base."""

    name = "task_arithmetic"
    accepted_parameters = frozenset({"lambda", "normalize"})

    def coefficients(
        self, inputs: Sequence[InputParameters], shared: SharedParameters
    ) -> list[float]:
        scale = 1.0 if shared.lambda_ is None else shared.lambda_
        weights = normalised_weights([item.weight for item in inputs], shared.normalize)
        return [scale * weight for weight in weights]


class SparseTaskArithmetic(DeltaMethod):
    """One of mergekit's generalized task arithmetic methods, on dense deltas."""

    def __init__(
        self,
        name: str,
        *,
        consensus: ConsensusMethod | None,
        sparsification: SparsificationMethod,
        default_normalize: bool,
        default_rescale: bool,
    ) -> None:
        self.name = name
        self._method = GeneralizedTaskArithmeticMerge(
            consensus_method=consensus,
            sparsification_method=sparsification,
            default_normalize=default_normalize,
            default_rescale=default_rescale,
            method_name=name,
            method_pretty_name=None,
            method_reference_url=None,
        )
        accepted = set(_SPARSE_SHARED)
        if consensus is not None:
            accepted.add("consensus_method")
        if sparsification == SparsificationMethod.della_magprune:
            accepted.add("epsilon")
        if sparsification == SparsificationMethod.magnitude_outliers:
            accepted.add("gamma")
        self.accepted_parameters = frozenset(accepted)
        self.random = sparsification in (
            SparsificationMethod.random,
            SparsificationMethod.della_magprune,
        )

    def mergekit_method(
        self, consensus_method: str | None = None
    ) -> GeneralizedTaskArithmeticMerge:
        """The mergekit method object, with the majority-sign rule overridden if asked."""
        if consensus_method is None or self._method.consensus_method is None:
            return self._method
        return dataclasses.replace(self._method, consensus_method=ConsensusMethod(consensus_method))

    def mergekit_parameters(
        self, inputs: Sequence[InputParameters], shared: SharedParameters
    ) -> dict[str, Any]:
        """The ``parameters`` argument of ``merge_tensors`` (per-input values in input order)."""
        spec_names = {spec.name for spec in self._method.spec.parameters}
        parameters: dict[str, Any] = {"weight": [item.weight for item in inputs]}
        for key in ("density", "epsilon", "gamma"):
            values = [getattr(item, key) for item in inputs]
            if key in spec_names and any(value is not None for value in values):
                default = next(s.default for s in self._method.spec.parameters if s.name == key)
                parameters[key] = [default if value is None else value for value in values]
        shared_values = {
            "lambda": shared.lambda_,
            "normalize": shared.normalize,
            "rescale": shared.rescale,
            "int8_mask": shared.int8_mask,
        }
        for key, value in shared_values.items():
            if value is not None and key in spec_names:
                parameters[key] = value
        return parameters

    def sparse_config(
        self, inputs: Sequence[InputParameters], shared: SharedParameters
    ) -> SparseConfig:
        """The method's parameters resolved as mergekit resolves them (its defaults)."""
        defaults = {spec.name: spec.default for spec in self._method.spec.parameters}
        method = self.mergekit_method(shared.consensus_method)
        sparsification = method.sparsification_method
        assert sparsification is not None
        consensus = method.consensus_method

        def per_input(key: str) -> list[float]:
            default = float(defaults.get(key) or 0.0)
            values = [getattr(item, key) for item in inputs]
            return [default if value is None else value for value in values]

        return SparseConfig(
            sparsification=sparsification.value,
            consensus=None if consensus is None else consensus.value,
            weights=[item.weight for item in inputs],
            densities=per_input("density"),
            gammas=per_input("gamma"),
            epsilons=per_input("epsilon"),
            normalize=bool(defaults["normalize"] if shared.normalize is None else shared.normalize),
            rescale=bool(defaults["rescale"] if shared.rescale is None else shared.rescale),
            lambda_=1.0 if shared.lambda_ is None else shared.lambda_,
        )

    def merge(
        self,
        sources: Sequence[DeltaSource],
        inputs: Sequence[InputParameters],
        shared: SharedParameters,
        *,
        seed: int,
        buffers: ModuleBuffers | None = None,
    ) -> torch.Tensor:
        generator = None
        if self.random:
            # One stream per module, as mergekit's global one after manual_seed(seed).
            generator = torch.Generator(device=sources[0].device).manual_seed(seed)
        return merge_sparse(sources, self.sparse_config(inputs, shared), generator, buffers)
