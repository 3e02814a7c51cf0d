"""Reading PEFT LoRA adapter directories: config, per-module scaling, lazy factors."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from safetensors import safe_open

from composer.errors import AdapterNotFound, InvalidAdapter, UnsupportedAdapter
from composer.fileio import sha256_file

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "AdapterInfo",
    "FactorReader",
    "ModuleFactors",
    "match_pattern_key",
    "read_adapter",
]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_PREFIX = "base_model.model."
_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<factor>[AB])\.weight$")


@dataclass(frozen=True)
class ModuleFactors:
    """One adapted module: ``dW = scale * B @ A`` with A ``rank x in``, B ``out x rank``."""

    name: str
    rank: int
    scale: float
    in_features: int
    out_features: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.out_features, self.in_features)


@dataclass(frozen=True)
class AdapterInfo:
    """An adapter directory read and checked; the factors stay on disk until asked for."""

    source: str
    path: Path
    weights_file: Path
    sha256: str
    base_model: str | None
    task_type: str | None
    modules: dict[str, ModuleFactors]


def match_pattern_key(pattern_keys: Iterable[str], module: str) -> str | None:
    """The ``rank_pattern``/``alpha_pattern`` key PEFT applies to ``module``, if any.

    PEFT (``peft.utils.other.get_pattern_key``) takes the first key that, read as a
    regular expression, matches the whole module name or a dotted suffix of it.
    """
    for key in pattern_keys:
        if re.match(rf"(.*\.)?({key})$", module):
            return key
    return None


def _refuse_unsupported(config: dict[str, Any], source: str) -> None:
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise UnsupportedAdapter(
            f"{source}: peft_type {peft_type} is not supported; the composer merges LoRA adapters"
        )
    refusals = {
        "use_dora": "DoRA adapters (use_dora: true) are not supported: their magnitude vector "
        "does not combine linearly; merge them into a model with PEFT instead",
        "modules_to_save": "adapters with modules_to_save are not supported: those modules are "
        "full copies, not low-rank deltas; retrain without modules_to_save",
        "lora_bias": "adapters with lora_bias are not supported",
        "trainable_token_indices": "adapters with trainable_token_indices are not supported",
        "layer_replication": "adapters with layer_replication are not supported",
        "fan_in_fan_out": "adapters with fan_in_fan_out (Conv1D layers) are not supported",
    }
    for key, message in refusals.items():
        if config.get(key):
            raise UnsupportedAdapter(f"{source}: {message}")
    bias = config.get("bias", "none")
    if bias != "none":
        raise UnsupportedAdapter(
            f"{source}: bias={bias!r} is not supported (trained biases are not low-rank deltas); "
            "only bias='none' adapters can be composed"
        )
    if config.get("target_parameters"):
        raise UnsupportedAdapter(f"{source}: adapters on target_parameters are not supported")


def read_adapter(
    source: str, root: Path | None = None, *, location: Path | None = None
) -> AdapterInfo:
    """Read a PEFT LoRA adapter directory and check that the composer can use it.

    ``source`` is the adapter as the recipe names it (and as the lineage records
    it). It is read from ``location`` when given (e.g. a registry ref resolved to
    a local directory), else as a path, a relative one taken from ``root``
    (default: the working directory).
    """
    path = location if location is not None else Path(source).expanduser()
    if not path.is_absolute() and root is not None:
        path = root / path
    config_file = path / ADAPTER_CONFIG
    if not config_file.is_file():
        raise AdapterNotFound(f"adapter {source}: no {ADAPTER_CONFIG} in {path}")
    weights_file = path / ADAPTER_WEIGHTS
    if not weights_file.is_file():
        hint = (
            " (pickled .bin weights are refused; save with safetensors)"
            if (path / "adapter_model.bin").exists()
            else ""
        )
        raise InvalidAdapter(f"adapter {source}: no {ADAPTER_WEIGHTS} in {path}{hint}")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidAdapter(f"adapter {source}: unreadable {ADAPTER_CONFIG}: {error}") from None
    if not isinstance(config, dict):
        raise InvalidAdapter(f"adapter {source}: {ADAPTER_CONFIG} is not a JSON object")
    _refuse_unsupported(config, source)
    modules = _read_modules(config, weights_file, source)
    return AdapterInfo(
        source=source,
        path=path,
        weights_file=weights_file,
        sha256=sha256_file(weights_file),
        base_model=config.get("base_model_name_or_path"),
        task_type=config.get("task_type"),
        modules=modules,
    )


def _read_modules(
    config: dict[str, Any], weights_file: Path, source: str
) -> dict[str, ModuleFactors]:
    try:
        r = int(config["r"])
        alpha = float(config["lora_alpha"])
    except (KeyError, TypeError, ValueError):
        message = f"adapter {source}: {ADAPTER_CONFIG} needs integer r and lora_alpha"
        raise InvalidAdapter(message) from None
    rank_pattern: dict[str, int] = config.get("rank_pattern") or {}
    alpha_pattern: dict[str, float] = config.get("alpha_pattern") or {}
    use_rslora = bool(config.get("use_rslora", False))

    shapes: dict[str, dict[str, list[int]]] = {}
    try:
        with safe_open(str(weights_file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                match = _KEY.match(key)
                if match is None:
                    raise UnsupportedAdapter(
                        f"adapter {source}: tensor {key} is not a LoRA factor of a linear layer "
                        "(embeddings, DoRA magnitudes and saved modules are not supported)"
                    )
                shape = list(handle.get_slice(key).get_shape())
                shapes.setdefault(match["module"], {})[match["factor"]] = shape
    except Exception as error:
        if isinstance(error, UnsupportedAdapter):
            raise
        raise InvalidAdapter(f"adapter {source}: unreadable {ADAPTER_WEIGHTS}: {error}") from None

    modules: dict[str, ModuleFactors] = {}
    for name in sorted(shapes):
        factors = shapes[name]
        if set(factors) != {"A", "B"}:
            raise InvalidAdapter(f"adapter {source}: module {name} lacks lora_A or lora_B")
        a_shape, b_shape = factors["A"], factors["B"]
        if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != b_shape[1]:
            raise UnsupportedAdapter(
                f"adapter {source}: module {name} has lora_A {a_shape} and lora_B {b_shape}; "
                "expected [r, in] and [out, r] of a linear layer"
            )
        r_key = match_pattern_key(rank_pattern, name)
        module_r = int(rank_pattern[r_key]) if r_key is not None else r
        a_key = match_pattern_key(alpha_pattern, name)
        module_alpha = float(alpha_pattern[a_key]) if a_key is not None else alpha
        if module_r != a_shape[0]:
            raise InvalidAdapter(
                f"adapter {source}: module {name} has rank {a_shape[0]} in its weights but "
                f"{module_r} in {ADAPTER_CONFIG}"
            )
        scale = module_alpha / math.sqrt(module_r) if use_rslora else module_alpha / module_r
        modules[name] = ModuleFactors(
            name=name,
            rank=module_r,
            scale=scale,
            in_features=a_shape[1],
            out_features=b_shape[0],
        )
    if not modules:
        raise InvalidAdapter(f"adapter {source}: {ADAPTER_WEIGHTS} holds no LoRA factors")
    return modules


class FactorReader:
    """Open weights files of several adapters and load one module's factors at a time."""

    def __init__(self, adapters: list[AdapterInfo], device: torch.device) -> None:
        self._adapters = adapters
        self._device = device
        self._stack = ExitStack()
        self._handles: list[Any] = []

    def __enter__(self) -> FactorReader:
        for adapter in self._adapters:
            self._handles.append(
                self._stack.enter_context(safe_open(str(adapter.weights_file), framework="pt"))
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.close()
        self._handles.clear()

    def factors(self, index: int, module: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, B)`` of input ``index`` for ``module``, in float32 on the device."""
        handle = self._handles[index]
        a = handle.get_tensor(f"{_PREFIX}{module}.lora_A.weight")
        b = handle.get_tensor(f"{_PREFIX}{module}.lora_B.weight")
        return (
            a.to(device=self._device, dtype=torch.float32),
            b.to(device=self._device, dtype=torch.float32),
        )

    def contributions(self, module: str) -> Iterator[tuple[int, float, torch.Tensor, torch.Tensor]]:
        """``(index, scale, A, B)`` of every input that adapts ``module``."""
        for index, adapter in enumerate(self._adapters):
            info = adapter.modules.get(module)
            if info is not None:
                a, b = self.factors(index, module)
                yield index, info.scale, a, b
