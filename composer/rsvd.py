"""Randomised truncated SVD of a dense delta, with the same bytes on any thread count.

Halko, Martinsson & Tropp (2009), Algorithm 4.4 with ``niter`` subspace
iterations (the algorithm of ``torch.svd_lowrank``): ``Q`` spans ``A @ Omega``
refined by ``(A A^T)^niter``, then the SVD of the small ``Q^T A``. The products
with ``A`` use every thread (their rows are split, never their reductions); the
QR and SVD of the thin factors run on one thread (``composer.threads``), and the
Gaussian test matrix comes from a generator seeded per module. The relative
error is measured against ``A`` a block of rows at a time, in float64, in a fixed
order, without a second copy of ``A``.
"""

from __future__ import annotations

import torch

from composer.blocks import block_ranges
from composer.threads import single_threaded

__all__ = ["randomized_svd", "relative_residual"]


def _orthonormal(x: torch.Tensor) -> torch.Tensor:
    with single_threaded(x.device):
        q: torch.Tensor = torch.linalg.qr(x).Q
    return q


def randomized_svd(
    a: torch.Tensor, q: int, niter: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(U, S, V)`` with ``A ~ U diag(S) V^T``, ``q`` columns each."""
    transposed = a.shape[0] < a.shape[1]
    work = a.T if transposed else a
    generator = torch.Generator(device=a.device).manual_seed(seed)
    omega = torch.randn(work.shape[1], q, generator=generator, device=a.device)
    basis = _orthonormal(work @ omega)
    for _ in range(niter):
        basis = _orthonormal(work.T @ basis)
        basis = _orthonormal(work @ basis)
    small = basis.T @ work
    with single_threaded(a.device):
        u, s, vh = torch.linalg.svd(small, full_matrices=False)
    u = basis @ u
    v = vh.T
    return (v, s, u) if transposed else (u, s, v)


def relative_residual(a: torch.Tensor, b: torch.Tensor, factor_a: torch.Tensor) -> float:
    """``||A - B @ F||_F / ||A||_F`` (0 for a zero ``A``).

    Block by block into two reused buffers: the float32 squares of ``A`` and of the
    difference are summed per row in float64 (one thread per row), then rows and
    blocks in order, so the figure does not depend on the thread count.
    """
    shape = (int(a.shape[0]), int(a.shape[1]))
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    residual = torch.zeros_like(total)
    work = torch.empty(0, device=a.device)
    for start, stop in block_ranges(shape, a.device):
        rows = a[start:stop]
        if work.shape != rows.shape:
            work = torch.empty_like(rows)
        total += torch.mul(rows, rows, out=work).sum(dim=1, dtype=torch.float64).sum()
        difference = torch.sub(rows, torch.mm(b[start:stop], factor_a, out=work), out=work)
        residual += difference.mul_(difference).sum(dim=1, dtype=torch.float64).sum()
    norm = float(total.sqrt())
    return float(residual.sqrt()) / norm if norm else 0.0
