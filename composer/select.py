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

import math
from collections.abc import Callable, Iterator

import torch

__all__ = ["SAMPLE_STEP", "TopSet", "magnitude_bits", "select_top"]

_HIGH = 1 << 15  # top 16 bits of a non-negative float32: the sign bit is always 0
_LOW = 1 << 16
#: CPU: modules of at least this many elements first bracket the threshold on a sample
SAMPLE_MIN = 1 << 20
#: the sample: every SAMPLE_STEP-th row
SAMPLE_STEP = 16
_SAMPLE_SIGMAS = 6.0
_MAX_BRACKET = 1 << 20  # bit patterns one exact pass may count (an 8 MiB histogram)

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
    sample: BitBlocks | None = None,
) -> list[TopSet]:
    """One ``TopSet`` per count in ``counts``, found in two passes over ``blocks()``.

    ``portable`` (the default on an accelerator) keeps every step on the device,
    with no data-dependent shape and no host round-trip; on CPU the default takes
    cheaper data-dependent shortcuts with the same result. ``sample`` (CPU, large
    modules): the bit patterns of a subset of rows, from which a bracket of the
    threshold is estimated, so that one exact pass usually does (see
    ``_select_on_cpu``).
    """
    if portable is None:
        portable = device.type != "cpu"
    sets = [TopSet(k, numel, device, portable) for k in counts]
    pending = [item for item in sets if not (item.everything or item.nothing)]
    if not pending:
        return sets
    if not portable:
        _select_on_cpu(pending, numel, device, blocks, sample if numel >= SAMPLE_MIN else None)
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


class _Keys:
    """A reused int32 buffer for the keys of one block."""

    def __init__(self, device: torch.device) -> None:
        self._buffer = torch.empty(0, dtype=torch.int32, device=device)

    def like(self, bits: torch.Tensor) -> torch.Tensor:
        if self._buffer.numel() < bits.numel():
            self._buffer = torch.empty(bits.numel(), dtype=torch.int32, device=bits.device)
        return self._buffer[: bits.numel()].view(bits.shape)


def _high_counts(blocks: BitBlocks, keys: _Keys, device: torch.device) -> torch.Tensor:
    high = torch.zeros(_HIGH, dtype=torch.int64, device=device)
    for _, _, bits in blocks():
        shifted = torch.bitwise_right_shift(bits, 16, out=keys.like(bits))
        high.add_(torch.bincount(shifted.view(-1), minlength=_HIGH)[:_HIGH])
    return high


def _bracket_counts(
    blocks: BitBlocks, brackets: list[tuple[int, int]], keys: _Keys, device: torch.device
) -> list[torch.Tensor]:
    """Per bracket ``(lo, width)``: counts of ``bits - lo`` for each pattern inside,
    with index 0 counting those below and index ``width + 1`` those at or above
    ``lo + width``. ``bits - lo + 1`` clamped to ``[0, width + 1]``: every element
    outside lands in an end count, with no boolean mask or gather (unvectorised on CPU).
    """
    hists = [torch.zeros(width + 2, dtype=torch.int64, device=device) for _, width in brackets]
    for _, _, bits in blocks():
        for (lo, width), hist in zip(brackets, hists, strict=True):
            offset = torch.sub(bits, lo - 1, out=keys.like(bits)).clamp_(0, width + 1)
            hist.add_(torch.bincount(offset.view(-1), minlength=width + 2)[: width + 2])
    return hists


def _settle_in(item: TopSet, lo: int, hist: torch.Tensor) -> bool:
    """Settle ``item`` from a bracket's counts; False if its threshold lies outside."""
    width = hist.numel() - 2
    above = int(hist[width + 1])
    inside = hist[1 : width + 1]
    if not above < item.k <= above + int(inside.sum()):
        return False
    index, above_index = _bin_of_rank(inside, torch.tensor(item.k - above))
    item._settle(lo + index, above + above_index, inside[index])
    return True


def _sample_bracket(high: torch.Tensor, k: int, numel: int) -> tuple[int, int] | None:
    """Bit patterns ``[lo, lo + width)`` holding the k-th largest of the module, with
    high probability, from the top-16-bit counts of a sample of its rows."""
    size = int(high.sum())
    if size == 0:
        return None
    expected = k / numel * size
    spread = _SAMPLE_SIGMAS * math.sqrt(expected * (1 - k / numel)) + 16
    top = torch.tensor(max(1, math.floor(expected - spread)))
    bottom = torch.tensor(min(size, math.ceil(expected + spread)))
    hi = int(_bin_of_rank(high, top)[0]) + 1
    lo = int(_bin_of_rank(high, bottom)[0])
    width = (hi - lo) << 16
    return (lo << 16, width) if width <= _MAX_BRACKET else None


def _select_on_cpu(
    pending: list[TopSet],
    numel: int,
    device: torch.device,
    blocks: BitBlocks,
    sample: BitBlocks | None,
) -> None:
    """The threshold of each set, exactly, in (usually) one pass over the module.

    With ``sample``, a histogram of the top 16 bits of a sample of rows brackets
    each threshold (six standard deviations of the sample's rank); one exact pass
    counts every bit pattern inside the bracket and every element above it. If a
    threshold falls outside its bracket (or without a sample) the two-level radix
    select runs: the top 16 bits of every element, then the low 16 bits inside
    the one bin holding the threshold. Either way the counts are exact integers.
    """
    keys = _Keys(device)
    todo = pending
    if sample is not None:
        high = _high_counts(sample, keys, device)
        brackets = [_sample_bracket(high, item.k, numel) for item in pending]
        chosen = [(item, b) for item, b in zip(pending, brackets, strict=True) if b is not None]
        hists = _bracket_counts(blocks, [b for _, b in chosen], keys, device)
        settled = {
            id(item)
            for (item, (lo, _)), hist in zip(chosen, hists, strict=True)
            if _settle_in(item, lo, hist)
        }
        todo = [item for item in pending if id(item) not in settled]
    if todo:
        high = _high_counts(blocks, keys, device)
        found = [int(_bin_of_rank(high, torch.tensor(item.k))[0]) for item in todo]
        hists = _bracket_counts(blocks, [(index << 16, _LOW) for index in found], keys, device)
        for item, index, hist in zip(todo, found, hists, strict=True):
            if not _settle_in(item, index << 16, hist):  # pragma: no cover (counts are exact)
                raise AssertionError("the radix select lost the threshold's bin")
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
