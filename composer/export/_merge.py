"""Merge a LoRA adapter into its base on the way to GGUF: "merge, then quantize".

The adapter is planned and read as ``compose`` reads a one-input linear recipe with a
merged output (``composer.api.plan``, ``FactorReader``, ``module_delta``), and each
adapted weight is ``base + B @ A`` computed in float32 by the merged-model writer's
``add_delta``, one tensor at a time, just before it is quantized. No merged model is
written to disk; the merged values are those ``compose`` would write in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from composer.adapters import FactorReader
from composer.api import plan
from composer.compute import module_delta
from composer.merged import add_delta

__all__ = ["Merger", "merger"]

Merger = Callable[[str, torch.Tensor], torch.Tensor]
"""``(hf tensor name, base tensor) -> tensor``: the merged float32 weight where the
adapter adapts that module, else the base tensor unchanged."""


@contextmanager
def merger(adapter: Path, base: Path) -> Iterator[Merger]:
    """Plan ``adapter`` merged into ``base`` (refusing a mismatch before any work)."""
    checked = plan(
        {
            "method": "linear",
            "inputs": [{"adapter": str(adapter), "weight": 1.0}],
            "output": {"type": "merged", "base": str(base)},
            "device": "cpu",
        }
    )
    with torch.no_grad(), FactorReader(checked.adapters, checked.device) as reader:

        def merge(key: str, tensor: torch.Tensor) -> torch.Tensor:
            module = key.removesuffix(".weight")
            shape = checked.modules.get(module)
            if not key.endswith(".weight") or shape is None:
                return tensor
            delta = module_delta(
                checked.method, reader, module, shape, checked.recipe, checked.device
            )
            return add_delta(tensor, delta, checked.device)

        yield merge
