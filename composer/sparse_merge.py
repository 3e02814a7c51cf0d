"""mergekit's generalized task arithmetic (TIES, DARE, DELLA, ...) in one fused pass.

``merge_group`` of mergekit 0.1.5, with a zero base, computes per element::

    d_i   = sparsify_i(dW_i) * w_i                  (float32, in input order)
    TIES: s = d_0 + d_1 + ...;  keep_i = sign(d_i) == (s >= 0 ? +1 : -1)
          mixed = sum_i d_i * keep_i;  divisor = sum_i w_i * keep_i  (0 -> 1)
    else: mixed = sum_i d_i;           divisor = sum_i w_i  (|.| < 1e-8 -> 1)
    normalize: mixed / divisor;  lambda != 1: mixed * lambda;  result 0 + mixed

Here the same float32 operations run in the same order on one row block at a
time, all inputs together, so each element is bit-identical to mergekit's
(given the same sparsification) while the working set is a few blocks. ``count``
consensus elects the sign by counting signs instead of summing. ``int8_mask``
only changes the dtype mergekit elects signs in, never the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from composer.blocks import DeltaSource, block_ranges
from composer.sparsify import make_sparsifier

__all__ = ["SparseConfig", "merge_sparse"]


@dataclass(frozen=True)
class SparseConfig:
    """One generalized task arithmetic method with its resolved parameters."""

    sparsification: str
    consensus: str | None
    weights: Sequence[float]
    densities: Sequence[float]
    gammas: Sequence[float]
    epsilons: Sequence[float]
    normalize: bool
    rescale: bool
    lambda_: float


def _elect(deltas: list[torch.Tensor], consensus: str, ones: torch.Tensor) -> torch.Tensor:
    """The elected sign, +1 or -1 per element (mergekit: ``total >= 0`` is +1).

    ``copysign`` reads -0.0 as negative, but a sum is -0.0 only when every term
    is -0.0, and then no delta agrees with either sign.
    """
    if consensus == "sum":
        total = torch.add(deltas[0], deltas[1]) if len(deltas) > 1 else deltas[0].clone()
        for delta in deltas[2:]:
            total += delta
    else:
        total = deltas[0].sign()
        for delta in deltas[1:]:
            total += delta.sign()
    return torch.copysign(ones, total, out=total)


def _disjoint(
    deltas: list[torch.Tensor], weights: torch.Tensor, consensus: str, normalize: bool
) -> torch.Tensor:
    """``sum_i d_i [sign(d_i) = elected]`` (and the matching sum of weights), exactly.

    With ``e`` the elected sign, ``d * e`` is exact and ``sum_i max(d_i e, 0)`` is
    ``e`` times mergekit's sum, term by term in the same order (rounding is
    symmetric), so multiplying back by ``e`` gives mergekit's bits.
    """
    ones = torch.ones_like(deltas[0])
    elected = _elect(deltas, consensus, ones)
    zero = torch.zeros((), dtype=deltas[0].dtype, device=deltas[0].device)
    mixed: torch.Tensor | None = None
    divisor: torch.Tensor | None = None
    for index, delta in enumerate(deltas):
        aligned = delta.mul_(elected)
        if normalize:
            share = torch.where(aligned > 0, weights[index], zero)
            divisor = share if divisor is None else divisor.add_(share)
        aligned.clamp_(min=0)
        mixed = aligned if mixed is None else mixed.add_(aligned)
    assert mixed is not None
    mixed.mul_(elected)
    if divisor is not None:
        mixed.div_(divisor.masked_fill_(divisor == 0, 1))
    return mixed


def _plain(deltas: list[torch.Tensor], divisor: torch.Tensor | None) -> torch.Tensor:
    mixed = deltas[0]
    for delta in deltas[1:]:
        mixed.add_(delta)
    return mixed if divisor is None else mixed.div_(divisor)


def _plain_divisor(weights: torch.Tensor) -> torch.Tensor:
    divisor = weights.sum()
    return torch.where(divisor.abs() < 1e-8, torch.ones_like(divisor), divisor)


def merge_sparse(
    sources: Sequence[DeltaSource], config: SparseConfig, generator: torch.Generator | None
) -> torch.Tensor:
    """The merged delta of one module (float32, on the sources' device)."""
    shape, device = sources[0].shape, sources[0].device
    sparsifiers = [
        make_sparsifier(config.sparsification, source, density, gamma, epsilon)
        for source, density, gamma, epsilon in zip(
            sources, config.densities, config.gammas, config.epsilons, strict=True
        )
    ]
    for sparsifier in sparsifiers:
        sparsifier.prepare(generator, config.rescale)
        sparsifier.start_pass()
    weights = torch.tensor(list(config.weights), dtype=torch.float32, device=device)
    divisor = _plain_divisor(weights) if config.normalize and not config.consensus else None
    out = torch.empty(shape, dtype=torch.float32, device=device)
    buffers: list[torch.Tensor] = []
    for start, stop in block_ranges(shape, device):
        if not buffers or buffers[0].shape[0] != stop - start:
            buffers = [torch.empty(stop - start, shape[1], device=device) for _ in sources]
        deltas = []
        for index, (source, sparsifier) in enumerate(zip(sources, sparsifiers, strict=True)):
            block = sparsifier.apply(start, stop, source.rows(start, stop, buffers[index]))
            deltas.append(block.mul_(weights[index]))
        if config.consensus:
            mixed = _disjoint(deltas, weights, config.consensus, config.normalize)
        else:
            mixed = _plain(deltas, divisor)
        if config.lambda_ != 1:
            mixed.mul_(config.lambda_)
        torch.add(mixed, 0.0, out=out[start:stop])
    return out
