"""One input's delta of a module, formed a block of rows at a time.

The sparse kernels never hold a module's delta ``dW_i = s_i * B_i @ A_i`` whole:
they form it row block by row block into reused float32 buffers, as often as a
pass needs it. A row block of a matrix product is the product of the row block
(the inner dimension, the rank, is never split), so every element is the same
float32 number in every pass and equals the one ``s_i * (B_i @ A_i)`` gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

__all__ = ["DeltaSource", "ModuleBuffers", "block_ranges", "rows_per_block"]

# 4 MiB of float32 per block on CPU: measured on the shared 2-core machine, 1 MiB
# blocks cost the same CPU time but 1.4x the wall time (each kernel is a parallel
# region, and one preempted thread stalls it); an accelerator wants larger launches.
_CPU_BLOCK_ELEMENTS = 1 << 20
_CUDA_BLOCK_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class DeltaSource:
    """``scale * B @ A`` (factors), a dense tensor, or zero (the input lacks the module)."""

    shape: tuple[int, int]
    device: torch.device
    a: torch.Tensor | None = None
    b: torch.Tensor | None = None
    scale: float = 1.0
    dense: torch.Tensor | None = None

    @classmethod
    def of_tensor(cls, tensor: torch.Tensor) -> DeltaSource:
        shape = (int(tensor.shape[0]), int(tensor.shape[1]))
        return cls(shape=shape, device=tensor.device, dense=tensor)

    @property
    def numel(self) -> int:
        return self.shape[0] * self.shape[1]

    def rows(self, start: int, stop: int, out: torch.Tensor, step: int = 1) -> torch.Tensor:
        """Rows ``start:stop:step`` of the delta, written into ``out`` (float32) and returned."""
        if self.dense is not None:
            return out.copy_(self.dense[start:stop:step])
        if self.a is None or self.b is None:
            return out.zero_()
        torch.mm(self.b[start:stop:step], self.a, out=out)
        return out.mul_(self.scale)


def rows_per_block(shape: tuple[int, int], device: torch.device) -> int:
    elements = _CPU_BLOCK_ELEMENTS if device.type == "cpu" else _CUDA_BLOCK_ELEMENTS
    return max(1, min(shape[0], elements // max(1, shape[1])))


def block_ranges(shape: tuple[int, int], device: torch.device) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` row ranges covering the module in order."""
    step = rows_per_block(shape, device)
    for start in range(0, shape[0], step):
        yield start, min(shape[0], start + step)


class ModuleBuffers:
    """Module-sized buffers reused from one module to the next of a composition.

    A fresh module-sized tensor is fresh pages: on CPU their first touch (page
    faults; on a VM that hands freed memory back to its host, host faults) costs
    more than the arithmetic that fills them (235 MB: ~0.4 s of CPU). A buffer is
    kept per name and grown when a larger module needs it; whoever takes one owns
    it until it takes the same name again, so a result built in one must be
    consumed before the next module is computed.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = {}

    def take(
        self, name: str, shape: tuple[int, int], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """An uninitialised ``shape`` tensor in the buffer called ``name``."""
        numel = shape[0] * shape[1]
        key = (name, dtype, torch.device(device))
        buffer = self._buffers.pop(key, None)
        if buffer is None or buffer.numel() < numel:
            del buffer
            buffer = torch.empty(numel, dtype=dtype, device=device)
        self._buffers[key] = buffer
        return buffer[:numel].view(shape)


def take(
    buffers: ModuleBuffers | None,
    name: str,
    shape: tuple[int, int],
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """``buffers.take(...)``, or a new tensor without ``buffers``."""
    if buffers is None:
        return torch.empty(shape, dtype=dtype, device=device)
    return buffers.take(name, shape, dtype, device)
