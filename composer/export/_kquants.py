"""Q4_K, Q5_K and Q6_K quantization, byte for byte as ggml's reference quantizers.

The ``gguf`` package only dequantizes k-quants, so these are ports of
``quantize_row_q4_K_ref``, ``quantize_row_q5_K_ref`` and ``quantize_row_q6_K_ref``
with their helpers ``make_qkx2_quants``, ``make_qx_quants`` and ``nearest_int``
(``ggml/src/ggml-quants.c``; llama-quantize calls exactly these when it has no
importance matrix). They run on all sub-blocks of a chunk of rows at once: arrays
are laid out ``(values of a sub-block, sub-blocks)``, so that each step of ggml's
per-value loops is one numpy operation over every sub-block.

Byte identity holds because ggml-base is compiled without ``-march`` flags (no FMA
contraction) and without ``-ffast-math`` (no reassociation): every operation is one
IEEE float32 operation, and each one is repeated here in float32 in the same order.
The running sums of ggml's loops (``sum_l += w*l``...) are therefore accumulated
value by value, not with numpy's pairwise ``sum``, and ``nearest_int`` (add 1.5 * 2**23
and keep the low mantissa bits) is ``rint``: round half to even.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from gguf import GGMLQuantizationType
from gguf.quants import quantize

__all__ = ["QK_K", "quantize_q4_k", "quantize_q5_k", "quantize_q6_k", "quantize_tensor"]

QK_K = 256
F32 = np.float32
Floats = npt.NDArray[np.float32]
Bytes = npt.NDArray[np.uint8]
_GROUP_MAX_EPS = F32(1e-15)


def _running_sum(terms: Floats) -> Floats:
    """``s = terms[0]; s += terms[1]; ...`` along the first axis, in float32."""
    total: Floats = terms[0].copy()
    for row in terms[1:]:
        total += row
    return total


def _nearest_int(values: Floats) -> npt.NDArray[np.int32]:
    rounded: npt.NDArray[np.int32] = np.rint(values).astype(np.int32)
    return rounded


def _f32(values: npt.NDArray[Any]) -> Floats:
    """The float32 array numpy computed (its stubs widen ``np.where`` to float64)."""
    return cast(Floats, values)


def _levels(scaled: Floats, low: int, high: int) -> Floats:
    """``MAX(low, MIN(high, nearest_int(scaled)))``, kept in float32 (exact for these sizes)."""
    rounded = np.rint(scaled, out=scaled)
    return np.clip(rounded, low, high, out=rounded)


def _make_qkx2_quants(
    x: Floats, weights: Floats, nmax: int, rmin: float, rdelta: float, nstep: int
) -> tuple[Floats, Floats, Floats]:
    """ggml's ``make_qkx2_quants`` on ``x`` of shape (n, sub-blocks): (scale, -min, L)."""
    low = x.min(axis=0)
    low[low > 0] = 0
    high = x.max(axis=0)
    flat = high == low
    sum_w = _running_sum(weights)
    sum_x = _running_sum(weights * x)
    iscale = F32(nmax) / _f32(np.where(flat, F32(1), high - low))
    scale = F32(1) / iscale
    levels = _levels(iscale * (x - low), 0, nmax)
    diff = scale * levels + low - x
    best_error = _running_sum(weights * (diff * diff))
    for step in range(nstep + 1):
        factor = F32(rmin) + F32(rdelta) * F32(step) + F32(nmax)
        iscale = factor / np.where(flat, F32(1), high - low)
        trial = _levels(iscale * (x - low), 0, nmax)
        weighted = weights * trial
        sum_l = _running_sum(weighted)
        sum_l2 = _running_sum(weighted * trial)
        sum_xl = _running_sum(np.multiply(weighted, x, out=weighted))
        det = sum_w * sum_l2 - sum_l * sum_l
        positive = det > 0
        safe_det = np.where(positive, det, F32(1))
        this_scale = (sum_w * sum_xl - sum_x * sum_l) / safe_det
        this_min = (sum_l2 * sum_x - sum_l * sum_xl) / safe_det
        clamp = this_min > 0
        if clamp.any():
            this_min[clamp] = 0
            with np.errstate(divide="ignore", invalid="ignore"):
                this_scale[clamp] = sum_xl[clamp] / sum_l2[clamp]
        diff = np.multiply(trial, this_scale, out=diff)
        diff += this_min
        diff -= x
        np.multiply(diff, diff, out=diff)
        error = _running_sum(np.multiply(diff, weights, out=diff))
        better = positive & (error < best_error) & ~flat
        if better.any():
            levels[:, better] = trial[:, better]
            best_error[better] = error[better]
            scale[better] = this_scale[better]
            low[better] = this_min[better]
    scale[flat] = 0
    levels[:, flat] = 0
    return scale, -low, levels


def _make_qx_quants(x: Floats, nmax: int) -> tuple[Floats, Floats, npt.NDArray[np.bool_]]:
    """ggml's ``make_qx_quants`` with ``rmse_type = 1`` and no weights on ``x`` of shape
    (n, sub-blocks): (scale, the iscale its levels L come from, all-zero sub-blocks).

    L itself is not kept: Q6_K recomputes every level from its final sub-block scale and
    needs make_qx_quants' L only where that scale rounds to 0, so it recomputes those
    from the chosen iscale (the same float32 products), and the search is sums only.
    """
    first_max = np.abs(x).argmax(axis=0)
    peak = np.take_along_axis(x, first_max[None, :], axis=0)[0]
    zero = np.abs(peak) < _GROUP_MAX_EPS
    peak[zero] = 1
    weights = x * x
    weighted_x = weights * x
    level = np.empty_like(x)
    product = np.empty_like(x)

    def sums(iscale: Floats) -> tuple[Floats, Floats]:
        """sum_lx and sum_l2 of ggml's loop: ``w*x[i]*l`` and ``w*l*l``, left to right."""
        np.multiply(x, iscale, out=level)
        np.clip(np.rint(level, out=level), -nmax, nmax - 1, out=level)
        sum_lx = _running_sum(np.multiply(weighted_x, level, out=product))
        np.multiply(weights, level, out=product)
        sum_l2 = _running_sum(np.multiply(product, level, out=product))
        return sum_lx, sum_l2

    chosen = F32(-nmax) / peak
    sum_lx, sum_l2 = sums(chosen)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = _f32(np.where(sum_l2 != 0, sum_lx / sum_l2, F32(0)))
    best = scale * sum_lx
    for step in (*range(-9, 0), *range(1, 10)):
        iscale = -(F32(nmax) + F32(0.1) * F32(step)) / peak
        sum_lx, sum_l2 = sums(iscale)
        better = (sum_l2 > 0) & (sum_lx * sum_lx > best * sum_l2)
        if better.any():
            np.copyto(chosen, iscale, where=better)
            with np.errstate(divide="ignore", invalid="ignore"):
                np.copyto(scale, sum_lx / sum_l2, where=better)
            np.copyto(best, scale * sum_lx, where=better)
    scale[zero] = 0
    return scale, chosen, zero


def _sub_blocks(x: Floats, size: int) -> Floats:
    """(n values,) -> (size, n / size): value i of every sub-block in one row."""
    return np.ascontiguousarray(x.reshape(-1, size).T)


def _fp16(values: Floats) -> tuple[npt.NDArray[np.float16], Floats]:
    half = values.astype(np.float16)
    return half, half.astype(F32)


def _k_scales(x: Floats, nmax: int, rmin: float, nstep: int) -> tuple[Bytes, Bytes, Floats]:
    """The shared part of Q4_K and Q5_K: (d and dmin bytes, 12 scale bytes, L) per block."""
    blocks = x.size // QK_K
    xs = _sub_blocks(x, 32)
    av_x = np.sqrt(_running_sum(xs * xs) / F32(32))
    weights = av_x + np.abs(xs)
    scales, mins, levels = _make_qkx2_quants(xs, weights, nmax, rmin, 0.1, nstep)
    scales, mins = scales.reshape(blocks, 8), mins.reshape(blocks, 8)
    max_scale = np.maximum(scales.max(axis=1), F32(0))
    max_min = np.maximum(mins.max(axis=1), F32(0))
    with np.errstate(divide="ignore"):
        inv_scale = np.where(max_scale > 0, F32(63) / max_scale, F32(0))
        inv_min = np.where(max_min > 0, F32(63) / max_min, F32(0))
    ls = np.minimum(_nearest_int(inv_scale[:, None] * scales) & 0xFF, 63).astype(np.uint8)
    lm = np.minimum(_nearest_int(inv_min[:, None] * mins) & 0xFF, 63).astype(np.uint8)
    packed = np.empty((blocks, 12), np.uint8)
    packed[:, 0:4] = ls[:, 0:4] | ((ls[:, 4:8] >> 4) << 6)
    packed[:, 4:8] = lm[:, 0:4] | ((lm[:, 4:8] >> 4) << 6)
    packed[:, 8:12] = (ls[:, 4:8] & 0xF) | ((lm[:, 4:8] & 0xF) << 4)
    d_half, d = _fp16(max_scale / F32(63))
    dmin_half, dmin = _fp16(max_min / F32(63))
    sub_d = (d[:, None] * ls.astype(F32)).reshape(-1)
    sub_m = (dmin[:, None] * lm.astype(F32)).reshape(-1)
    nonzero = sub_d != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        requantized = _levels((xs + sub_m) / sub_d, 0, nmax)
    levels[:, nonzero] = requantized[:, nonzero]
    header: Bytes = np.concatenate(
        [d_half.view(np.uint8).reshape(blocks, 2), dmin_half.view(np.uint8).reshape(blocks, 2)],
        axis=1,
    )
    # back to (block, 256 values) in the source order
    return header, packed, levels.T.reshape(blocks, QK_K)


def quantize_q4_k(x: Floats) -> Bytes:
    """``quantize_row_q4_K_ref`` of ``x`` (a multiple of 256 values): 144 bytes a block."""
    header, scales, levels = _k_scales(x, 15, -1.0, 20)
    quads = levels.reshape(-1, 4, 2, 32).astype(np.uint8)
    qs = (quads[:, :, 0, :] | (quads[:, :, 1, :] << 4)).reshape(-1, 128)
    return np.concatenate([header, scales, qs], axis=1).reshape(-1)


def quantize_q5_k(x: Floats) -> Bytes:
    """``quantize_row_q5_K_ref`` of ``x`` (a multiple of 256 values): 176 bytes a block."""
    header, scales, levels = _k_scales(x, 31, -0.5, 15)
    pairs = levels.reshape(-1, 4, 2, 32).astype(np.uint8)
    low = pairs & 0xF
    qs = (low[:, :, 0, :] | (low[:, :, 1, :] << 4)).reshape(-1, 128)
    high = (pairs >> 4).astype(np.uint8)  # (block, chunk, half, 32)
    shifts = (2 * np.arange(4)[:, None] + np.arange(2)[None, :]).astype(np.uint8)
    qh = (high << shifts[None, :, :, None]).sum(axis=(1, 2), dtype=np.uint8)
    return np.concatenate([header, scales, qh, qs], axis=1).reshape(-1)


def quantize_q6_k(x: Floats) -> Bytes:
    """``quantize_row_q6_K_ref`` of ``x`` (a multiple of 256 values): 210 bytes a block."""
    blocks = x.size // QK_K
    xs = _sub_blocks(x, 16)
    scales, chosen, flat = _make_qx_quants(xs, 32)
    scales = scales.reshape(blocks, 16)
    first_max = np.abs(scales).argmax(axis=1)
    max_scale = np.take_along_axis(scales, first_max[:, None], axis=1)[:, 0]
    zero = np.abs(max_scale) < _GROUP_MAX_EPS
    iscale = F32(-128) / _f32(np.where(zero, F32(1), max_scale))
    d_half, d = _fp16(F32(1) / iscale)
    sc = np.minimum(_nearest_int(iscale[:, None] * scales), 127).astype(np.int8)
    sub_d = (d[:, None] * sc.astype(F32)).reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        levels = _levels(xs / sub_d, -32, 31)
    levels += F32(32)
    unscaled = sub_d == 0
    if unscaled.any():  # ggml keeps make_qx_quants' levels where the sub-scale rounds to 0
        kept = _levels(xs[:, unscaled] * chosen[unscaled], -32, 31) + F32(32)
        kept[:, flat[unscaled]] = 0
        levels[:, unscaled] = kept
    quads = levels.astype(np.uint8).T.reshape(blocks, 2, 4, 32)
    low = quads & 0xF
    ql = np.concatenate(
        [low[:, :, 0, :] | (low[:, :, 2, :] << 4), low[:, :, 1, :] | (low[:, :, 3, :] << 4)],
        axis=2,
    ).reshape(blocks, 128)
    high = quads >> 4
    qh = high[:, :, 0] | (high[:, :, 1] << 2) | (high[:, :, 2] << 4) | (high[:, :, 3] << 6)
    out = np.concatenate(
        [ql, qh.reshape(blocks, 64), sc.view(np.uint8), d_half.view(np.uint8).reshape(blocks, 2)],
        axis=1,
    )
    out[zero] = 0
    return out.reshape(-1)


_K_QUANTIZERS = {
    GGMLQuantizationType.Q4_K: quantize_q4_k,
    GGMLQuantizationType.Q5_K: quantize_q5_k,
    GGMLQuantizationType.Q6_K: quantize_q6_k,
}
# values per piece: 8192 sub-blocks of 32, which keeps each step's arrays in the CPU
# cache; measured fastest of 16K..786K values per piece on a 3072-wide tensor
_PIECE = 262144


def quantize_tensor(data: Floats, ggml_type: GGMLQuantizationType) -> Bytes:
    """The bytes of float32 ``data`` (rows of whole blocks) as ``ggml_type``, as llama.cpp
    encodes them.

    K-quants by the ports above, in pieces of whole blocks spread over the CPU's cores
    (numpy releases the GIL); every other type by the ``gguf`` package.
    """
    quantizer = _K_QUANTIZERS.get(ggml_type)
    flat = np.ascontiguousarray(data, dtype=F32)
    if quantizer is None:
        encoded: Bytes = quantize(flat, ggml_type).reshape(-1).view(np.uint8)
        return encoded
    values = flat.reshape(-1)
    pieces = [values[start : start + _PIECE] for start in range(0, values.size, _PIECE)]
    workers = min(len(pieces), os.cpu_count() or 1)
    if workers <= 1:
        return np.concatenate([quantizer(piece) for piece in pieces])
    with ThreadPoolExecutor(workers) as pool:
        return np.concatenate(list(pool.map(quantizer, pieces)))
