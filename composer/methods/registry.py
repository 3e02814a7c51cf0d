"""Method names to method objects: a new method is one class and one line here."""

from __future__ import annotations

from mergekit.merge_methods.generalized_task_arithmetic import ConsensusMethod
from mergekit.sparsify import SparsificationMethod

from composer.methods.base import MergeMethod
from composer.methods.linear import LinearMethod, NegationMethod
from composer.methods.task_arithmetic import SparseTaskArithmetic, TaskArithmeticMethod

__all__ = ["METHODS", "get_method", "method_names"]

_SUM = ConsensusMethod.sum
_MAG = SparsificationMethod.magnitude
_RANDOM = SparsificationMethod.random
_OUTLIERS = SparsificationMethod.magnitude_outliers
_DELLA = SparsificationMethod.della_magprune

METHODS: dict[str, MergeMethod] = {
    method.name: method
    for method in (
        LinearMethod(),
        TaskArithmeticMethod(),
        NegationMethod(),
        SparseTaskArithmetic(
            "ties",
            consensus=_SUM,
            sparsification=_MAG,
            default_normalize=True,
            default_rescale=False,
        ),
        SparseTaskArithmetic(
            "dare_linear",
            consensus=None,
            sparsification=_RANDOM,
            default_normalize=False,
            default_rescale=True,
        ),
        SparseTaskArithmetic(
            "dare_ties",
            consensus=_SUM,
            sparsification=_RANDOM,
            default_normalize=False,
            default_rescale=True,
        ),
        SparseTaskArithmetic(
            "magnitude_prune",
            consensus=None,
            sparsification=_MAG,
            default_normalize=False,
            default_rescale=False,
        ),
        SparseTaskArithmetic(
            "breadcrumbs",
            consensus=None,
            sparsification=_OUTLIERS,
            default_normalize=False,
            default_rescale=False,
        ),
        SparseTaskArithmetic(
            "breadcrumbs_ties",
            consensus=_SUM,
            sparsification=_OUTLIERS,
            default_normalize=False,
            default_rescale=False,
        ),
        SparseTaskArithmetic(
            "della",
            consensus=_SUM,
            sparsification=_DELLA,
            default_normalize=True,
            default_rescale=True,
        ),
        SparseTaskArithmetic(
            "della_linear",
            consensus=None,
            sparsification=_DELLA,
            default_normalize=False,
            default_rescale=True,
        ),
    )
}


def method_names() -> list[str]:
    return list(METHODS)


def get_method(name: str) -> MergeMethod:
    """The method called ``name``; ``KeyError`` if there is none."""
    return METHODS[name]
