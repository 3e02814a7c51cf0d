"""Low-rank algebra: exact stacking, optimal truncation, per-module error.

A weighted sum of LoRA deltas ``sum_i c_i s_i B_i A_i`` is ``B_s @ A_s`` with the
factors stacked side by side, of rank ``sum_i r_i``. Its best rank-r approximation
comes from QR of the stacked factors and an SVD of the small ``R x R`` core; the
``d x k`` matrix is never formed, and the relative Frobenius error of the
truncation is read off the core's singular values.

Dense deltas (sparse methods) go back to factors by a truncated SVD: exact
(``torch.linalg.svd``) or randomised (``composer.rsvd``, seeded). The
factorisations run on one thread (``composer.threads``), so the published bytes
do not depend on the thread count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from composer.rsvd import randomized_svd, relative_residual
from composer.threads import single_threaded

__all__ = [
    "LowRankFactors",
    "RankSpec",
    "choose_rank",
    "reduce_dense",
    "reduce_stacked",
    "stack_factors",
]

RankSpec = Literal["exact"] | int | float
_MIN_OVERSAMPLE = 10
_POWER_ITERATIONS = 6


@dataclass(frozen=True)
class LowRankFactors:
    """``B @ A`` (A: ``rank x in``, B: ``out x rank``, scaling 1) and its relative error."""

    a: torch.Tensor
    b: torch.Tensor
    error: float

    @property
    def rank(self) -> int:
        return int(self.a.shape[0])


def stack_factors(
    contributions: Sequence[tuple[float, torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(coefficient, A, B)`` into ``(A_s, B_s)`` with ``B_s @ A_s = sum c B A``."""
    a_s = torch.cat([a for _, a, _ in contributions], dim=0)
    b_s = torch.cat([coefficient * b for coefficient, _, b in contributions], dim=1)
    return a_s, b_s


def _tail_error(s: torch.Tensor, rank: int) -> float:
    energy = s.double().square()
    total = float(energy.sum())
    if total == 0.0:
        return 0.0
    return float((energy[rank:].sum() / total).sqrt())


def _numerical_rank(s: torch.Tensor, shape: tuple[int, int]) -> int:
    if s.numel() == 0 or float(s[0]) == 0.0:
        return 1
    tolerance = float(s[0]) * max(shape) * torch.finfo(torch.float32).eps
    return max(1, int((s > tolerance).sum()))


def choose_rank(s: torch.Tensor, spec: RankSpec, shape: tuple[int, int]) -> int:
    """The rank that ``spec`` asks for, given descending singular values ``s``.

    ``exact`` keeps every numerically non-zero value, an int is capped at the
    available rank, and an energy ``e`` in (0, 1] takes the smallest rank whose
    singular values hold at least ``e`` of the squared Frobenius norm.
    """
    if spec == "exact":
        return _numerical_rank(s, shape)
    if isinstance(spec, int):
        return max(1, min(spec, s.numel()))
    energy = s.double().square()
    total = float(energy.sum())
    if total == 0.0:
        return 1
    captured = torch.cumsum(energy, dim=0) / total
    reached = int((captured < spec - 1e-12).sum()) + 1
    return max(1, min(reached, s.numel()))


def _split(
    u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, rank: int
) -> tuple[torch.Tensor, torch.Tensor]:
    root = s[:rank].sqrt()
    b = u[:, :rank] * root
    a = root[:, None] * vh[:rank]
    return a, b


def reduce_stacked(a_s: torch.Tensor, b_s: torch.Tensor, spec: RankSpec) -> LowRankFactors:
    """The stacked product ``B_s @ A_s`` at the rank ``spec`` asks for.

    ``exact`` returns the stacked factors as they are (error 0). Otherwise the
    result is the optimal approximation (Eckart-Young) of that rank.
    """
    stacked_rank = a_s.shape[0]
    if spec == "exact" or (isinstance(spec, int) and spec >= stacked_rank):
        return LowRankFactors(a=a_s, b=b_s, error=0.0)
    with single_threaded(b_s.device):
        q_b, r_b = torch.linalg.qr(b_s)
        q_a, r_a = torch.linalg.qr(a_s.T)
        u, s, vh = torch.linalg.svd(r_b @ r_a.T, full_matrices=False)
    rank = choose_rank(s, spec, (b_s.shape[0], a_s.shape[1]))
    a_core, b_core = _split(u, s, vh, rank)
    return LowRankFactors(a=a_core @ q_a.T, b=q_b @ b_core, error=_tail_error(s, rank))


def reduce_dense(
    delta: torch.Tensor,
    spec: RankSpec,
    *,
    svd: Literal["exact", "randomized"] = "exact",
    seed: int = 0,
) -> LowRankFactors:
    """Factors of a dense delta by truncated SVD, with their relative Frobenius error.

    The randomised SVD serves integer ranks only (``exact`` and energy ranks need
    the whole spectrum, so they always take the exact SVD); its error is measured
    against ``delta`` itself, not assumed.
    """
    shape = (int(delta.shape[0]), int(delta.shape[1]))
    if svd == "randomized" and isinstance(spec, int) and spec < min(shape):
        # Oversampling by the rank itself and six power iterations put the subspace
        # within float32 round-off of the top singular vectors for LoRA-sized ranks;
        # the error below is measured, never assumed.
        q = min(spec + max(_MIN_OVERSAMPLE, spec), min(shape))
        u, s, v = randomized_svd(delta, q=q, niter=_POWER_ITERATIONS, seed=seed)
        a, b = _split(u, s, v.T, spec)
        a, b = a.contiguous(), b.contiguous()
        return LowRankFactors(a=a, b=b, error=relative_residual(delta, b, a))
    with single_threaded(delta.device):
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    rank = choose_rank(s, spec, shape)
    a, b = _split(u, s, vh, rank)
    return LowRankFactors(a=a.contiguous(), b=b.contiguous(), error=_tail_error(s, rank))
