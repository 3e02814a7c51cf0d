"""The K largest magnitudes of a module in O(n): a two-level radix select.

mergekit finds them with a full ``argsort`` of ``|dW|`` (O(n log n), two thirds of
a TIES merge's time). The magnitude of a float32 is ordered like its bit pattern
read as an int32 (sign bit clear), so two histograms find the K-th largest
exactly: one of the top 16 bits over the whole delta, one of the low 16 bits
inside the single bin that holds the K-th element. Each is one pass over the
delta, formed block by block; the histograms are integers, so the result does
not depend on the block size or on the thread count, and on an accelerator
every step stays on the device (no host round-trip).

Ties. ``argsort`` breaks ties between equal magnitudes in an unspecified order;
here the rule is fixed: **among equal magnitudes, the element that comes first
in row-major order counts as the larger**. The top-K set is then unique and
holds exactly K elements, as mergekit's does. A tie at a zero threshold changes
nothing (a kept zero is a zero), so it costs nothing; a partial tie at a non-zero
threshold is resolved with a running count of the tied elements in block order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

__all__ = ["TopSet", "magnitude_bits", "select_top"]

_HIGH = 1 << 15  # top 16 bits of a non-negative float32: the sign bit is always 0
_LOW = 1 << 16

#: yields ``(start, stop, bits)``: the int32 bit patterns of ``|dW|`` for rows start:stop
BitBlocks = Callable[[], Iterator[tuple[int, int, torch.Tensor]]]


def magnitude_bits(block: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``|block|`` into ``out`` (float32), returned as its int32 bit patterns."""
    return torch.abs(block, out=out).view(torch.int32)


def _add_counts(
    hist: torch.Tensor, keys: torch.Tensor, valid: torch.Tensor | None, portable: bool
) -> None:
    """``hist[key] += 1`` for each key (where ``valid``)."""
    if not portable:
        if valid is not None:
            keys = keys[valid]
        hist[: hist.numel()].add_(torch.bincount(keys.reshape(-1), minlength=hist.numel()))
        return
    # bincount sizes its output from the data (a host round-trip); index_add_ does not.
    if valid is not None:
        keys = torch.where(valid, keys, hist.numel() - 1)
    ones = torch.ones((), dtype=hist.dtype, device=hist.device).expand(keys.numel())
    hist.index_add_(0, keys.reshape(-1).long(), ones)


def _bin_of_rank(hist: torch.Tensor, rank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The bin holding the ``rank``-th largest key (1-based) and the count of keys above it."""
    at_or_above = hist.flip(0).cumsum(0).flip(0)
    index = (at_or_above >= rank).sum() - 1
    return index, at_or_above[index] - hist[index]


class TopSet:
    """The ``k`` largest magnitudes of a module under the tie rule of this module."""

    def __init__(self, k: int, numel: int, device: torch.device, portable: bool) -> None:
        self.k = k
        self.everything = k >= numel
        self.nothing = k <= 0
        self.threshold = torch.zeros((), dtype=torch.int32, device=device)
        self.quota = torch.zeros((), dtype=torch.int64, device=device)
        self._portable = portable
        self._ordered = portable
        self._seen = torch.zeros((), dtype=torch.int64, device=device)
        # CPU: tied elements at flat positions below ``_cutoff`` are in the set.
        self._cutoff: int | None = None
        self._at_least = -1.0
        self._above = -1.0

    def _settle(self, bits: torch.Tensor, above: torch.Tensor, ties: torch.Tensor) -> None:
        self.threshold = bits.to(torch.int32)
        self.quota = self.k - above
        if not self._ordered:
            # On CPU one look decides whether the ordered path is needed at all.
            self._ordered = bool((self.quota < ties) & (self.threshold != 0))
            threshold = int(self.threshold)
            self._above = _as_float(threshold)
            self._at_least = _as_float(threshold - 1) if threshold > 0 else -1.0

    def start_pass(self) -> None:
        """Call before each pass over the module: ties are counted in module order."""
        self._seen.zero_()

    def shrink_(self, block: torch.Tensor, start: int) -> torch.Tensor:
        """Zero (as +0) the elements of ``block`` (rows from ``start``) not in the set, in place.

        CPU only (not ``portable``): one vectorised float pass, ``hardshrink`` at the
        float just below the threshold (keeps ``|x| >= t``) or at it (keeps ``|x| > t``),
        split at the flat position of the last tied element the quota keeps.
        """
        if self.everything:
            return block
        if self.nothing:
            return block.zero_()
        flat = block.view(-1)
        first = start * block.shape[1]
        split = flat.numel() if self._cutoff is None else self._cutoff - first
        split = max(0, min(flat.numel(), split))
        if split:
            torch.hardshrink(flat[:split], self._at_least, out=flat[:split])
        if split < flat.numel():
            torch.hardshrink(flat[split:], self._above, out=flat[split:])
        return block

    def keep(self, bits: torch.Tensor) -> torch.Tensor:
        """A bool mask of the elements of this block (in module order) that are in the set."""
        if self.everything:
            return torch.ones_like(bits, dtype=torch.bool)
        if self.nothing:
            return torch.zeros_like(bits, dtype=torch.bool)
        if not self._ordered:
            return bits >= self.threshold
        tied = bits == self.threshold
        if self._portable:
            rank = tied.reshape(-1).cumsum(0).reshape(bits.shape) + self._seen
            self._seen += tied.sum()
            return (bits > self.threshold) | (tied & (rank <= self.quota))
        # CPU: a block rarely holds a tie; take the first ones still within the quota.
        kept = bits > self.threshold
        positions = tied.reshape(-1).nonzero().reshape(-1)
        take = max(0, min(positions.numel(), int(self.quota - self._seen)))
        kept.reshape(-1)[positions[:take]] = True
        self._seen += positions.numel()
        return kept


def select_top(
    counts: list[int],
    numel: int,
    device: torch.device,
    blocks: BitBlocks,
    *,
    portable: bool | None = None,
) -> list[TopSet]:
    """One ``TopSet`` per count in ``counts``, found in two passes over ``blocks()``.

    ``portable`` (the default on an accelerator) keeps every step on the device,
    with no data-dependent shape and no host round-trip; on CPU the default takes
    cheaper data-dependent shortcuts with the same result.
    """
    if portable is None:
        portable = device.type != "cpu"
    sets = [TopSet(k, numel, device, portable) for k in counts]
    pending = [item for item in sets if not (item.everything or item.nothing)]
    if not pending:
        return sets
    if not portable:
        _select_on_cpu(pending, device, blocks)
        return sets
    high = torch.zeros(_HIGH + 1, dtype=torch.int64, device=device)
    for _, _, bits in blocks():
        _add_counts(high, bits >> 16, None, portable)
    found = [_bin_of_rank(high[:_HIGH], torch.tensor(item.k, device=device)) for item in pending]
    lows = [torch.zeros(_LOW + 1, dtype=torch.int64, device=device) for _ in pending]
    for _, _, bits in blocks():
        key = bits >> 16
        low = bits & (_LOW - 1)
        for (bin_index, _), hist in zip(found, lows, strict=True):
            _add_counts(hist, low, key == bin_index, portable)
    for item, (bin_index, above_bin), hist in zip(pending, found, lows, strict=True):
        low_index, above_low = _bin_of_rank(hist[:_LOW], item.k - above_bin)
        item._settle((bin_index << 16) | low_index, above_bin + above_low, hist[low_index])
    return sets


def _as_float(bits: int) -> float:
    """The float32 whose bit pattern is ``bits``, as a Python float (exact)."""
    return float(torch.tensor(bits, dtype=torch.int32).view(torch.float32))


def _select_on_cpu(pending: list[TopSet], device: torch.device, blocks: BitBlocks) -> None:
    """The two histogram passes with in-place integer kernels and ``bincount``.

    The second pass counts ``bits - (bin << 16)`` clamped to ``[-1, 2**16]``: every
    element outside the bin lands in one of the two end counts, so no boolean mask
    or gather is formed (those are unvectorised on CPU).
    """
    keys = torch.empty(0, dtype=torch.int32, device=device)

    def keyed(bits: torch.Tensor) -> torch.Tensor:
        nonlocal keys
        if keys.numel() < bits.numel():
            keys = torch.empty(bits.numel(), dtype=torch.int32, device=device)
        return keys[: bits.numel()].view(bits.shape)

    high = torch.zeros(_HIGH, dtype=torch.int64, device=device)
    for _, _, bits in blocks():
        shifted = torch.bitwise_right_shift(bits, 16, out=keyed(bits))
        high.add_(torch.bincount(shifted.view(-1), minlength=_HIGH)[:_HIGH])
    found = [_bin_of_rank(high, torch.tensor(item.k, device=device)) for item in pending]
    lows = [torch.zeros(_LOW + 2, dtype=torch.int64, device=device) for _ in pending]
    for _, _, bits in blocks():
        for (bin_index, _), hist in zip(found, lows, strict=True):
            offset = torch.sub(bits, int(bin_index) << 16, out=keyed(bits))
            offset.clamp_(-1, _LOW).add_(1)
            hist.add_(torch.bincount(offset.view(-1), minlength=_LOW + 2)[: _LOW + 2])
    for item, (bin_index, above_bin), hist in zip(pending, found, lows, strict=True):
        low_index, above_low = _bin_of_rank(hist[1 : _LOW + 1], item.k - above_bin)
        item._settle((bin_index << 16) | low_index, above_bin + above_low, hist[low_index + 1])
    ordered = [item for item in pending if item._ordered]
    if ordered:
        _locate_ties(ordered, blocks)


def _locate_ties(ordered: list[TopSet], blocks: BitBlocks) -> None:
    """The flat position after the last tied element each set keeps (row-major order).

    Only sets whose threshold is partly tied need it; the pass stops at the block
    where the last set's quota of tied elements is reached.
    """
    seen = [0] * len(ordered)
    quota = [int(item.quota) for item in ordered]
    for index, item in enumerate(ordered):
        if quota[index] <= 0:
            item._cutoff = 0
    for start, _, bits in blocks():
        waiting = [i for i, item in enumerate(ordered) if item._cutoff is None]
        if not waiting:
            return
        first = start * bits.shape[1]
        for index in waiting:
            tied = (bits == ordered[index].threshold).view(-1)
            count = int(tied.sum())
            if seen[index] + count >= quota[index]:
                position = int(tied.nonzero()[quota[index] - seen[index] - 1])
                ordered[index]._cutoff = first + position + 1
            seen[index] += count
