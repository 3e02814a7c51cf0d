"""Sparsification of one input's delta, as mergekit 0.1.5's ``mergekit.sparsify``.

Each ``Sparsifier`` first makes the passes its rule needs over the whole delta
(``prepare``), then sparsifies any row block in place (``apply``), block after
block in module order, as often as the caller makes a pass.

- ``magnitude`` (TIES, magnitude prune): keep the ``max(1, int(density * n))``
  largest magnitudes (``composer.select``: O(n), ties by row-major order).
- ``magnitude_outliers`` (breadcrumbs): drop the ``int(gamma * n)`` largest, keep
  the next ``int(density * n)`` (fewer outliers when they would not fit).
- ``random`` (DARE): keep each element with probability ``density``.
- ``della_magprune`` (DELLA): keep with probability
  ``density - epsilon + 2 * epsilon * (rank - 1) / (cols - 1)``, ``rank`` the
  element's magnitude rank within its row (1 = smallest; equal magnitudes: the
  earlier one ranks higher).

Random draws: one float32 uniform per element of each input in turn, in
row-major order, from a ``torch.Generator`` seeded with the module's seed, and
``u < p`` keeps the element. On CPU that is mergekit's stream exactly:
``torch.bernoulli(p)`` draws the same 24-bit uniform per element and compares it
the same way, so the masks equal mergekit's under ``torch.manual_seed(seed)``;
``uniform_`` just draws them 2.5x faster. The masks of a module are drawn once,
input after input as mergekit does, and kept as bools (one byte per element).

Rescaling (``rescale``) multiplies the kept elements by
``l1(delta) / l1(kept)``, left out when either is below 1e-7, as mergekit does.
Both L1 norms are summed in float64 in a fixed order (per row, then rows and
blocks in order) and rounded to float32, so they do not depend on the thread
count; mergekit sums in float32 in an order that does, which can move its
factor by an ulp or so.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch

from composer.blocks import DeltaSource, ModuleBuffers, block_ranges, rows_per_block, take
from composer.select import SAMPLE_STEP, TopSet, magnitude_bits, select_top

__all__ = ["Sparsifier", "make_sparsifier"]

_RESCALE_EPS = 1e-7


class Sparsifier(ABC):
    """One input's sparsification rule, prepared over the whole module."""

    def __init__(self, source: DeltaSource) -> None:
        self.source = source
        self._scratch = torch.empty(0, device=source.device)
        self.ratio: torch.Tensor | None = None

    def _abs_bits(self, block: torch.Tensor) -> torch.Tensor:
        if self._scratch.numel() < block.numel():
            self._scratch = torch.empty(block.numel(), device=block.device)
        return magnitude_bits(block, self._scratch[: block.numel()].view(block.shape))

    def _blocks(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        buffer = torch.empty(0, device=self.source.device)
        for start, stop in block_ranges(self.source.shape, self.source.device):
            rows = (stop - start, self.source.shape[1])
            if buffer.numel() != rows[0] * rows[1]:
                buffer = torch.empty(rows, device=self.source.device)
            yield start, stop, self.source.rows(start, stop, buffer)

    def prepare(self, generator: torch.Generator | None, rescale: bool) -> None:
        """Every pass the rule needs before ``apply``; draws come from ``generator``."""
        self._select(generator)
        if rescale:
            before = torch.zeros((), dtype=torch.float64, device=self.source.device)
            after = torch.zeros_like(before)
            self.start_pass()
            for start, stop, block in self._blocks():
                before += _l1(block)
                after += _l1(self._mask(start, stop, block))
            self.ratio = _rescale_ratio(before, after)

    def start_pass(self) -> None:  # noqa: B027 (most rules keep no state between blocks)
        """Call before each pass of ``apply`` calls over the module."""

    def apply(self, start: int, stop: int, block: torch.Tensor) -> torch.Tensor:
        """Rows ``start:stop`` of the sparsified delta, computed in place in ``block``."""
        masked = self._mask(start, stop, block)
        return masked if self.ratio is None else masked.mul_(self.ratio)

    @abstractmethod
    def _select(self, generator: torch.Generator | None) -> None: ...

    @abstractmethod
    def _mask(self, start: int, stop: int, block: torch.Tensor) -> torch.Tensor: ...


def _l1(block: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
    # Per-row float64 sums (one thread each), then the rows in order: a fixed order.
    magnitudes = block.abs() if scratch is None else torch.abs(block, out=scratch)
    return magnitudes.sum(dim=1, dtype=torch.float64).sum()


def _rescale_ratio(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    before32, after32 = before.float(), after.float()
    small = (before32 < _RESCALE_EPS) | (after32 < _RESCALE_EPS)
    return torch.where(small, torch.ones_like(before32), before32 / after32)


class _Keep(Sparsifier):
    """Keeps everything (density >= 1): mergekit returns the delta untouched."""

    def prepare(self, generator: torch.Generator | None, rescale: bool) -> None:
        return None

    def _select(self, generator: torch.Generator | None) -> None:
        return None

    def _mask(self, start: int, stop: int, block: torch.Tensor) -> torch.Tensor:
        return block


class _Drop(Sparsifier):
    """Keeps nothing (density <= 0 for the rules that say so)."""

    def prepare(self, generator: torch.Generator | None, rescale: bool) -> None:
        return None

    def _select(self, generator: torch.Generator | None) -> None:
        return None

    def _mask(self, start: int, stop: int, block: torch.Tensor) -> torch.Tensor:
        return block.zero_()


class _Magnitude(Sparsifier):
    """The ``top`` largest magnitudes, less the ``outliers`` largest of them."""

    def __init__(self, source: DeltaSource, top: int, outliers: int) -> None:
        super().__init__(source)
        self._counts = [top, outliers]
        self._sets: list[TopSet] = []

    def _select(self, generator: torch.Generator | None) -> None:
        def bits() -> Iterator[tuple[int, int, torch.Tensor]]:
            for start, stop, block in self._blocks():
                yield start, stop, self._abs_bits(block)

        def sample() -> Iterator[tuple[int, int, torch.Tensor]]:
            step = SAMPLE_STEP
            rows, cols = self.source.shape
            chunk = max(1, rows_per_block(self.source.shape, self.source.device)) * step
            buffer = torch.empty(0, device=self.source.device)
            for start in range(0, rows, chunk):
                stop = min(rows, start + chunk)
                shape = (len(range(start, stop, step)), cols)
                if buffer.shape != shape:
                    buffer = torch.empty(shape, device=self.source.device)
                block = self.source.rows(start, stop, buffer, step)
                yield start, stop, self._abs_bits(block)

        source = self.source
        self._sets = select_top(self._counts, source.numel, source.device, bits, sample=sample)

    def start_pass(self) -> None:
        for item in self._sets:
            item.start_pass()

    def _mask(self, start: int, stop: int, block: torch.Tensor) -> torch.Tensor:
        top, outliers = self._sets
        if outliers.nothing and block.device.type == "cpu":
            return top.shrink_(block, start)
        bits = self._abs_bits(block)
        keep = top.keep(bits)
        if not outliers.nothing:
            keep &= outliers.keep(bits).logical_not_()
        # Dropped elements become +0 where mergekit's x * 0 keeps the sign of x: the
        # merged result adds a +0 base at the end, which erases the difference.
        return block.masked_fill_(keep.logical_not_(), 0.0)


class _Drawn(Sparsifier):
    """A random mask per element, drawn once for the module with ``u < p``."""

    def __init__(
        self,
        source: DeltaSource,
        density: float,
        epsilon: float | None,
        buffers: tuple[ModuleBuffers, str] | None,
    ) -> None:
        super().__init__(source)
        self._density = density
        self._epsilon = epsilon
        self._buffers = buffers
        self._kept = torch.empty(0, dtype=torch.bool, device=source.device)

    def _probabilities(self, block: torch.Tensor) -> torch.Tensor:
        density, epsilon = self._density, self._epsilon
        if epsilon is None:
            return torch.tensor(density, dtype=torch.float32, device=block.device)
        cols = block.shape[1]
        order = torch.sort(block.abs(), dim=1, descending=True, stable=True).indices
        rank = torch.arange(cols, 0, -1, dtype=torch.float32, device=block.device)
        ranks = torch.empty_like(block).scatter_(1, order, rank.expand_as(block))
        # mergekit's expression, operation by operation (min rank 1, max rank cols).
        low = torch.ones((), device=block.device)
        high = torch.tensor(float(cols), device=block.device)
        rank_norm = ((ranks - low) / (high - low)).clamp(0, 1)
        return (density - epsilon) + rank_norm * 2 * epsilon

    def prepare(self, generator: torch.Generator | None, rescale: bool) -> None:
        """The draws and (with ``rescale``) both L1 norms, in one pass over the delta."""
        self._draw(generator, rescale)

    def _select(self, generator: torch.Generator | None) -> None:
        self._draw(generator, False)

    def _draw(self, generator: torch.Generator | None, rescale: bool) -> None:
        shape = self.source.shape
        store, name = self._buffers if self._buffers is not None else (None, "")
        self._kept = take(store, name, shape, torch.bool, self.source.device)
        uniform = torch.empty(0, device=self.source.device)
        before = torch.zeros((), dtype=torch.float64, device=self.source.device)
        after = torch.zeros_like(before)
        for start, stop, block in self._blocks():
            if uniform.shape != block.shape:
                uniform = torch.empty_like(block)
            uniform.uniform_(generator=generator)
            # u < p keeps exactly what bernoulli's u < p keeps
            torch.lt(uniform, self._probabilities(block), out=self._kept[start:stop])
            if rescale:
                before += _l1(block, uniform)
                after += _l1(self._mask(start, stop, block), uniform)
        if rescale:
            self.ratio = _rescale_ratio(before, after)

    def _mask(self, start: int, stop: int, block: torch.Tensor) -> torch.Tensor:
        # x * 1 or x * 0 (a signed zero, as mergekit's x * mask): a vectorised multiply
        # by the mask's bytes, where masked_fill_ with a bool mask (or a multiply by
        # one, converting it) is not vectorised on CPU (3-15x slower).
        return block.mul_(self._kept[start:stop].view(torch.uint8))


def make_sparsifier(
    method: str,
    source: DeltaSource,
    density: float,
    gamma: float,
    epsilon: float,
    buffers: tuple[ModuleBuffers, str] | None = None,
) -> Sparsifier:
    """The sparsifier of ``method`` (a mergekit ``SparsificationMethod`` value) for one input.

    ``buffers``: where a drawn mask (one byte per element) may live, and its name.
    """
    numel = source.numel
    if density >= 1:
        return _Keep(source)
    if method == "magnitude":
        if density <= 0 or numel == 0:
            return _Drop(source)
        return _Magnitude(source, max(1, int(density * numel)), 0)
    if method == "magnitude_outliers":
        target = int(density * numel)
        bottom = max(0, numel - target - int(gamma * numel))
        return _Magnitude(source, numel - bottom, numel - bottom - target)
    if method == "random":
        return _Drawn(source, density, None, buffers)
    if method == "della_magprune":
        if density <= 0:
            return _Drop(source)
        if density + epsilon >= 1 or density - epsilon <= 0:
            raise ValueError("Epsilon must be chosen such that density +/- epsilon is in (0, 1)")
        return _Drawn(source, density, epsilon, buffers)
    raise NotImplementedError(method)
