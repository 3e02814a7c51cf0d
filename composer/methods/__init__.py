"""Merge methods: maths on the deltas of one module at a time."""

from composer.methods.base import (
    DeltaMethod,
    InputParameters,
    LowRankMethod,
    MergeMethod,
    SharedParameters,
    module_seed,
)
from composer.methods.registry import METHODS, get_method, method_names

__all__ = [
    "METHODS",
    "DeltaMethod",
    "InputParameters",
    "LowRankMethod",
    "MergeMethod",
    "SharedParameters",
    "get_method",
    "method_names",
    "module_seed",
]
