"""Lorry's composer: merge LoRA adapters into new adapters or fully merged models.

A plain library: a recipe and adapter directories in, an adapter or model
directory out. No HTTP, no database.
"""

from composer.api import (
    ComposeResult,
    CompositionPlan,
    ProgressCallback,
    ProgressEvent,
    compose,
    plan,
)
from composer.card import InputRecord, ModuleRecord
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
from composer.methods import method_names
from composer.recipe import Input, Output, Parameters, Recipe, load_recipe, parse_recipe

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
]
