"""Adapter output (a PEFT LoRA directory) and atomic output directories."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from composer.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from composer.errors import OutputExists
from composer.lowrank import LowRankFactors

__all__ = ["COMPOSITION_FILE", "adapter_config", "atomic_output", "write_adapter", "write_json"]

COMPOSITION_FILE = "lorry_composition.json"


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(out_dir: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary directory beside ``out_dir`` that becomes ``out_dir`` on success.

    On any error the temporary directory is removed and ``out_dir`` is left as it
    was. A non-empty ``out_dir`` is refused unless ``overwrite`` is set.
    """
    out_dir = out_dir.absolute()
    if out_dir.exists():
        if not out_dir.is_dir():
            raise OutputExists(f"output {out_dir} exists and is not a directory")
        if any(out_dir.iterdir()) and not overwrite:
            raise OutputExists(
                f"output directory {out_dir} is not empty; choose another or pass overwrite=True "
                "(`lorry compose --overwrite`)"
            )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    work.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the output is not
    try:
        yield work
        if out_dir.exists():
            old = out_dir.with_name(f"{work.name}.old")
            out_dir.rename(old)
            work.rename(out_dir)
            shutil.rmtree(old)
        else:
            work.rename(out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def adapter_config(
    ranks: Mapping[str, int], *, base_model: str | None, task_type: str | None
) -> dict[str, Any]:
    """A PEFT LoRA config whose scaling is 1 on every module (``lora_alpha == r``)."""
    r = max(ranks.values())
    pattern = {name: rank for name, rank in ranks.items() if rank != r}
    return {
        "alpha_pattern": dict(pattern),
        "base_model_name_or_path": base_model,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "lora_alpha": r,
        "lora_dropout": 0.0,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": r,
        "rank_pattern": pattern,
        "target_modules": sorted(ranks),
        "task_type": task_type,
        "use_dora": False,
        "use_rslora": False,
    }


def write_adapter(
    out: Path,
    factors: Mapping[str, LowRankFactors],
    *,
    dtype: torch.dtype,
    base_model: str | None,
    task_type: str | None,
) -> None:
    """Write adapter_model.safetensors and adapter_config.json for ``factors``."""
    tensors: dict[str, torch.Tensor] = {}
    for name in sorted(factors):
        item = factors[name]
        tensors[f"base_model.model.{name}.lora_A.weight"] = item.a.to("cpu", dtype).contiguous()
        tensors[f"base_model.model.{name}.lora_B.weight"] = item.b.to("cpu", dtype).contiguous()
    # One metadata key only: safetensors keeps metadata in a hash map, so several keys
    # would be written in a random order and break byte-identical outputs.
    save_file(tensors, str(out / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    ranks = {name: item.rank for name, item in factors.items()}
    write_json(
        out / ADAPTER_CONFIG,
        adapter_config(ranks, base_model=base_model, task_type=task_type),
    )
