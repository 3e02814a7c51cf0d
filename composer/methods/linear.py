"""Weighted sums of deltas: linear, task arithmetic and negation, all exact."""

from __future__ import annotations

from collections.abc import Sequence

from composer.methods.base import InputParameters, LowRankMethod, SharedParameters

__all__ = ["LinearMethod", "NegationMethod", "normalised_weights"]


def normalised_weights(weights: list[float], normalize: bool | None) -> list[float]:
    if not normalize:
        return weights
    total = sum(weights)
    if abs(total) < 1e-8:
        return weights
    return [weight / total for weight in weights]


class LinearMethod(LowRankMethod):
    """``sum_i w_i * dW_i`` (divided by ``sum_i w_i`` when ``normalize`` is set)."""

    name = "linear"
    accepted_parameters = frozenset({"normalize"})

    def coefficients(
        self, inputs: Sequence[InputParameters], shared: SharedParameters
    ) -> list[float]:
        return normalised_weights([item.weight for item in inputs], shared.normalize)


class NegationMethod(LowRankMethod):
    """``-w * dW`` of a single input: removes a behaviour an adapter adds."""

    name = "negation"

    def coefficients(
        self, inputs: Sequence[InputParameters], shared: SharedParameters
    ) -> list[float]:
        return [-item.weight for item in inputs]
