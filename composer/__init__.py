"""Lorry's composer: merge LoRA adapters into new adapters or fully merged models.

A plain library: a recipe and adapter directories in, an adapter or model
directory out. No HTTP, no database.

The errors load eagerly; everything else (and with it torch and mergekit)
loads on first use, so that a process that only maps ``ComposerError`` (the
registry server before its first composition) does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from composer.errors import (
    AdapterNotFound,
    ComposerError,
    DeviceUnavailable,
    IncompatibleInputs,
    InputError,
    InvalidAdapter,
    InvalidBaseModel,
    OutputExists,
    RecipeError,
    UnsupportedAdapter,
)

if TYPE_CHECKING:
    from composer.api import (
        ComposeResult,
        CompositionPlan,
        ProgressCallback,
        ProgressEvent,
        compose,
        plan,
    )
    from composer.card import InputRecord, ModuleRecord
    from composer.methods import method_names
    from composer.recipe import Input, Output, Parameters, Recipe, load_recipe, parse_recipe
    from composer.threads import use_threads

_LAZY = {
    "ComposeResult": "composer.api",
    "CompositionPlan": "composer.api",
    "ProgressCallback": "composer.api",
    "ProgressEvent": "composer.api",
    "compose": "composer.api",
    "plan": "composer.api",
    "InputRecord": "composer.card",
    "ModuleRecord": "composer.card",
    "method_names": "composer.methods",
    "Input": "composer.recipe",
    "Output": "composer.recipe",
    "Parameters": "composer.recipe",
    "Recipe": "composer.recipe",
    "load_recipe": "composer.recipe",
    "parse_recipe": "composer.recipe",
    "use_threads": "composer.threads",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'composer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AdapterNotFound",
    "ComposeResult",
    "ComposerError",
    "CompositionPlan",
    "DeviceUnavailable",
    "IncompatibleInputs",
    "Input",
    "InputError",
    "InputRecord",
    "InvalidAdapter",
    "InvalidBaseModel",
    "ModuleRecord",
    "Output",
    "OutputExists",
    "Parameters",
    "ProgressCallback",
    "ProgressEvent",
    "Recipe",
    "RecipeError",
    "UnsupportedAdapter",
    "compose",
    "load_recipe",
    "method_names",
    "parse_recipe",
    "plan",
    "use_threads",
]
