"""The interface of a merge method: maths on tensors, no paths, no files."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from composer.blocks import DeltaSource, ModuleBuffers

__all__ = [
    "DeltaMethod",
    "InputParameters",
    "LowRankMethod",
    "MergeMethod",
    "SharedParameters",
    "module_seed",
]


@dataclass(frozen=True)
class InputParameters:
    """The parameters of one input as the method sees them (None: the method's default)."""

    weight: float = 1.0
    density: float | None = None
    epsilon: float | None = None
    gamma: float | None = None


@dataclass(frozen=True)
class SharedParameters:
    """Parameters shared by all inputs (None: the method's default)."""

    lambda_: float | None = None
    normalize: bool | None = None
    rescale: bool | None = None
    int8_mask: bool | None = None
    consensus_method: str | None = None


def module_seed(seed: int, module: str) -> int:
    """The seed of one module's random draws: stable across runs, processes and machines.

    Each module gets its own stream, so a module's result does not depend on which
    other modules a recipe touches or on their order.
    """
    digest = hashlib.sha256(f"{seed}:{module}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


class MergeMethod(ABC):
    """A named way to combine the deltas ``dW_i`` of several adapters on one module."""

    name: str
    #: recipe parameters this method reads (besides ``weight`` and ``seed``)
    accepted_parameters: frozenset[str] = frozenset()
    #: the result of an exact method is itself low rank (sum of input ranks)
    exact: bool = False


class LowRankMethod(MergeMethod):
    """A method whose result is ``sum_i c_i * dW_i``: exact by stacking the factors."""

    exact = True

    @abstractmethod
    def coefficients(
        self, inputs: Sequence[InputParameters], shared: SharedParameters
    ) -> list[float]:
        """The coefficient ``c_i`` of each input's delta."""


class DeltaMethod(MergeMethod):
    """A method that acts element-wise on the dense deltas of one module."""

    @abstractmethod
    def merge(
        self,
        sources: Sequence[DeltaSource],
        inputs: Sequence[InputParameters],
        shared: SharedParameters,
        *,
        seed: int,
        buffers: ModuleBuffers | None = None,
    ) -> torch.Tensor:
        """The merged delta of one module (float32); ``seed`` drives every random draw.

        ``sources[i]`` forms input i's delta a block of rows at a time. With
        ``buffers`` the result may live in one of them (valid until their next use).
        """
