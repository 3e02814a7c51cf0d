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

from composer.blocks import DeltaSource, ModuleBuffers, block_ranges, take
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


_SIGN_BIT = -(1 << 31)
_ONE_BITS = 0x3F800000  # 1.0f


class _Work:
    """The float32 buffers of one row block, allocated once per module and reused.

    Every kernel below writes into them in place: on CPU a fresh 4 MiB result is
    fresh pages (page faults cost more than the arithmetic), and the boolean
    kernels (``where``, ``masked_fill_``, comparisons) are not vectorised, so the
    pass is written with float and integer arithmetic only.
    """

    def __init__(self, rows: int, cols: int, count: int, device: torch.device) -> None:
        self.inputs = [torch.empty(rows, cols, device=device) for _ in range(count)]
        self.elected = torch.empty(rows, cols, device=device)
        self.divisor = torch.empty(rows, cols, device=device)
        self.scratch = torch.empty(rows, cols, device=device)

    def fits(self, rows: int) -> bool:
        return self.elected.shape[0] == rows


def _elect(deltas: list[torch.Tensor], consensus: str, work: _Work) -> torch.Tensor:
    """The elected sign, +1.0 or -1.0 per element (mergekit: ``total >= 0`` is +1).

    The sign bit of the total, or-ed into the bits of 1.0, reads -0.0 as negative;
    but a sum is -0.0 only when every term is -0.0, and then no delta agrees with
    either sign.
    """
    total = work.elected
    if consensus == "sum":
        if len(deltas) > 1:
            torch.add(deltas[0], deltas[1], out=total)
        else:
            total.copy_(deltas[0])
        for delta in deltas[2:]:
            total.add_(delta)
    else:
        torch.sign(deltas[0], out=total)
        for delta in deltas[1:]:
            total.add_(torch.sign(delta, out=work.scratch))
    bits = total.view(torch.int32)
    bits.bitwise_and_(_SIGN_BIT).bitwise_or_(_ONE_BITS)
    return total


def _disjoint(
    deltas: list[torch.Tensor],
    weights: Sequence[float],
    consensus: str,
    normalize: bool,
    work: _Work,
) -> torch.Tensor:
    """``sum_i d_i [sign(d_i) = elected]`` (and the matching sum of weights), exactly.

    With ``e`` the elected sign, ``d * e`` is exact and ``sum_i max(d_i e, 0)`` is
    ``e`` times mergekit's sum, term by term in the same order (rounding is
    symmetric), so multiplying back by ``e`` gives mergekit's bits. The weight of
    input i counts where ``max(d_i e, 0) > 0``: ``sign`` of it is exactly 1 or 0.
    """
    elected = _elect(deltas, consensus, work)
    mixed = deltas[0]
    divisor = work.divisor
    for index, delta in enumerate(deltas):
        delta.mul_(elected).clamp_(min=0)
        if normalize:
            share = torch.sign(delta, out=divisor if index == 0 else work.scratch)
            if weights[index] != 1:
                share.mul_(weights[index])
            if index:
                divisor.add_(share)
        if index:
            mixed.add_(delta)
    mixed.mul_(elected)
    if normalize:
        _nonzero_divisor_(divisor, weights, work.scratch)
        mixed.div_(divisor)
    return mixed


def _nonzero_divisor_(
    divisor: torch.Tensor, weights: Sequence[float], scratch: torch.Tensor
) -> None:
    """mergekit's ``divisor[divisor == 0] = 1``, without a boolean mask.

    With all weights positive a non-zero divisor is at least the smallest weight
    (a sum of positive terms), so clamping there is exact and only lifts the
    zeros, whose numerators are zero (0 / w = 0 / 1). Otherwise
    ``1 - sign(|divisor|)`` is 1 exactly at the zeros and is added (+0 elsewhere).
    """
    if min(weights) > 0:
        divisor.clamp_(min=min(weights))
        return
    torch.abs(divisor, out=scratch).sign_().neg_().add_(1)
    divisor.add_(scratch)


def _plain(deltas: list[torch.Tensor], divisor: torch.Tensor | None) -> torch.Tensor:
    mixed = deltas[0]
    for delta in deltas[1:]:
        mixed.add_(delta)
    return mixed if divisor is None else mixed.div_(divisor)


def _plain_divisor(weights: torch.Tensor) -> torch.Tensor:
    divisor = weights.sum()
    return torch.where(divisor.abs() < 1e-8, torch.ones_like(divisor), divisor)


def merge_sparse(
    sources: Sequence[DeltaSource],
    config: SparseConfig,
    generator: torch.Generator | None,
    buffers: ModuleBuffers | None = None,
) -> torch.Tensor:
    """The merged delta of one module (float32, on the sources' device).

    With ``buffers`` the result (and any drawn masks) live in its module-sized
    buffers: the result is valid until the next call with the same ``buffers``.
    """
    shape, device = sources[0].shape, sources[0].device
    sparsifiers = [
        make_sparsifier(
            config.sparsification,
            source,
            density,
            gamma,
            epsilon,
            None if buffers is None else (buffers, f"mask-{index}"),
        )
        for index, (source, density, gamma, epsilon) in enumerate(
            zip(sources, config.densities, config.gammas, config.epsilons, strict=True)
        )
    ]
    for sparsifier in sparsifiers:
        sparsifier.prepare(generator, config.rescale)
        sparsifier.start_pass()
    weights = torch.tensor(list(config.weights), dtype=torch.float32, device=device)
    divisor = _plain_divisor(weights) if config.normalize and not config.consensus else None
    out = take(buffers, "merged", shape, torch.float32, device)
    work: _Work | None = None
    for start, stop in block_ranges(shape, device):
        if work is None or not work.fits(stop - start):
            work = _Work(stop - start, shape[1], len(sources), device)
        deltas = []
        for index, (source, sparsifier) in enumerate(zip(sources, sparsifiers, strict=True)):
            block = sparsifier.apply(start, stop, source.rows(start, stop, work.inputs[index]))
            # x * 1.0 is x, bit for bit (signed zeros and NaNs included)
            deltas.append(block if config.weights[index] == 1 else block.mul_(weights[index]))
        if config.consensus:
            weight_values = [float(value) for value in config.weights]
            mixed = _disjoint(deltas, weight_values, config.consensus, config.normalize, work)
        else:
            mixed = _plain(deltas, divisor)
        if config.lambda_ != 1:
            mixed.mul_(config.lambda_)
        torch.add(mixed, 0.0, out=out[start:stop])
    return out
