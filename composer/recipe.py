"""The recipe: one validated pydantic model shared by the CLI, the service and the composer.

The shape is a contract: fields may be added, never renamed or removed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from composer.errors import RecipeError
from composer.mergekit_config import from_mergekit, is_mergekit_config
from composer.methods import DeltaMethod, get_method, method_names
from composer.methods.task_arithmetic import SparseTaskArithmetic

__all__ = [
    "MAX_INPUTS",
    "MAX_RANK",
    "MAX_SCALE",
    "Input",
    "Output",
    "Parameters",
    "Rank",
    "Recipe",
    "load_recipe",
    "parse_recipe",
]

Rank = Literal["exact"] | int | float
DType = Literal["float32", "float16", "bfloat16"]

MAX_SCALE = 100.0
"""Largest ``|weight|`` and ``|lambda|``. mergekit takes any float, but its examples and the
task-arithmetic literature stay within [-2, 2]; a delta scaled by more than 100 overflows half
precision on real adapters and is a typo or an attack, not a merge."""
MAX_RANK = 65_536
"""Largest integer output rank: a LoRA rank cannot exceed a layer's smaller dimension, and no
released model has a layer wider than this. Deployments cap it lower
(``LORRY_MAX_OUTPUT_RANK``)."""
MAX_INPUTS = 1_024
"""Most inputs of one recipe, wherever it runs; the registry caps it lower
(``LORRY_MAX_RECIPE_INPUTS``)."""
MAX_SEED = 2**63 - 1
"""torch's generators take 64-bit seeds; mergekit's DARE seeds them the same way."""

_PER_INPUT = ("density", "epsilon", "gamma")
# Every float of a recipe is finite: NaN and infinity are refused (JSON's NaN / Infinity,
# YAML's .nan / .inf), so no composition computes or publishes non-finite tensors.
_FINITE = ConfigDict(extra="forbid", allow_inf_nan=False)


class Input(BaseModel):
    """One adapter and its weight; per-input parameters override the global ones."""

    model_config = _FINITE

    adapter: str = Field(
        min_length=1,
        max_length=4096,
        description="an adapter directory (a registry ref later)",
    )
    weight: float = Field(default=1.0, ge=-MAX_SCALE, le=MAX_SCALE)
    density: float | None = Field(default=None, gt=0, le=1)
    epsilon: float | None = Field(default=None, ge=0, lt=1)
    gamma: float | None = Field(default=None, ge=0, lt=1)


class Parameters(BaseModel):
    """Global method parameters (``lambda`` is spelled ``lambda`` in YAML/JSON)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    density: float | None = Field(default=None, gt=0, le=1)
    lambda_: float | None = Field(default=None, alias="lambda", ge=-MAX_SCALE, le=MAX_SCALE)
    epsilon: float | None = Field(default=None, ge=0, lt=1)
    gamma: float | None = Field(default=None, ge=0, lt=1)
    normalize: bool | None = None
    rescale: bool | None = None
    int8_mask: bool | None = None
    consensus_method: Literal["sum", "count"] | None = None
    seed: int = Field(default=0, ge=0, le=MAX_SEED)


class Output(BaseModel):
    """What to write: a PEFT adapter directory or a fully merged model directory."""

    model_config = _FINITE

    type: Literal["adapter", "merged"] = "adapter"
    rank: Rank | None = Field(
        default=None,
        description="adapter only: exact, an integer, or an energy in (0, 1] (default exact)",
    )
    svd: Literal["exact", "randomized"] = Field(
        default="randomized",
        description="sparse methods, integer ranks: truncated SVD of the dense delta, "
        "randomised (fast, error measured) or exact (LAPACK, optimal, slow on large layers)",
    )
    base: str | None = Field(default=None, description="merged only: the base model directory")
    dtype: DType | None = Field(
        default=None,
        description="merged: dtype of the written weights (default: the base's); "
        "adapter: dtype of the factors (default float32)",
    )

    @field_validator("rank", mode="before")
    @classmethod
    def _check_rank(cls, value: Any) -> Any:
        if value is None or value == "exact":
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("rank must be 'exact', a positive integer or an energy in (0, 1]")
        if isinstance(value, int):
            if not 1 <= value <= MAX_RANK:
                raise ValueError(f"an integer rank must be between 1 and {MAX_RANK}, got {value}")
            return value
        if not 0 < value <= 1:
            raise ValueError("an energy rank must be in (0, 1], e.g. 0.99; use an int for a rank")
        return value

    @model_validator(mode="after")
    def _check_type(self) -> Output:
        if self.type == "merged":
            if not self.base:
                raise ValueError("output.type 'merged' needs output.base: the base model directory")
            if self.rank is not None:
                raise ValueError("output.rank applies to adapters; a merged model has no rank")
        elif self.base is not None:
            raise ValueError("output.base applies to type 'merged' only")
        return self

    @property
    def effective_rank(self) -> Rank:
        return "exact" if self.rank is None else self.rank


class Recipe(BaseModel):
    """A composition: a method, its inputs and parameters, and the output to write."""

    model_config = _FINITE

    method: str
    inputs: list[Input] = Field(min_length=1, max_length=MAX_INPUTS)
    parameters: Parameters = Field(default_factory=Parameters)
    output: Output = Field(default_factory=Output)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    base_model: str | None = Field(
        default=None,
        description="base_model_name_or_path of the output; set it when the inputs disagree",
    )

    @field_validator("method")
    @classmethod
    def _check_method(cls, value: str) -> str:
        if value not in method_names():
            raise ValueError(f"unknown method {value!r}; known: {', '.join(method_names())}")
        return value

    @model_validator(mode="after")
    def _check_parameters(self) -> Recipe:
        method = get_method(self.method)
        if self.method == "negation" and len(self.inputs) != 1:
            raise ValueError(
                "method 'negation' takes exactly one input; use 'linear' with negative "
                "weights to combine several"
            )
        given = {name for name in self.parameters.model_fields_set if name != "seed"}
        given = {"lambda" if name == "lambda_" else name for name in given}
        for item in self.inputs:
            given |= {name for name in _PER_INPUT if getattr(item, name) is not None}
        unused = sorted(given - method.accepted_parameters)
        if unused:
            accepted = ", ".join(sorted(method.accepted_parameters)) or "none"
            raise ValueError(
                f"method {self.method!r} does not use parameter(s) {', '.join(unused)} "
                f"(it takes: weight, seed, {accepted})"
            )
        if isinstance(method, SparseTaskArithmetic) and "epsilon" in method.accepted_parameters:
            self._check_della()
        if not isinstance(method, DeltaMethod) and "svd" in self.output.model_fields_set:
            raise ValueError(
                f"output.svd applies to sparse methods; {self.method!r} is exact by stacking"
            )
        return self

    def _check_della(self) -> None:
        for index, item in enumerate(self.inputs):
            density = item.density if item.density is not None else self.parameters.density
            epsilon = item.epsilon if item.epsilon is not None else self.parameters.epsilon
            density = 1.0 if density is None else density
            epsilon = 0.15 if epsilon is None else epsilon
            if density < 1 and not (density - epsilon > 0 and density + epsilon < 1):
                raise ValueError(
                    f"inputs.{index}: density {density} +/- epsilon {epsilon} must stay "
                    "inside (0, 1) for DELLA; lower epsilon"
                )


_SHOWN_ERRORS = 20


def _format_errors(error: ValidationError) -> str:
    details = error.errors(include_url=False, include_input=False)
    lines = []
    for detail in details[:_SHOWN_ERRORS]:
        location = ".".join(str(part) for part in detail["loc"]) or "recipe"
        message = detail["msg"].removeprefix("Value error, ")
        lines.append(f"{location}: {message}")
    if len(details) > _SHOWN_ERRORS:
        lines.append(f"... and {len(details) - _SHOWN_ERRORS} more errors")
    return "invalid recipe:\n  " + "\n  ".join(lines)


def parse_recipe(data: Any) -> Recipe:
    """Validate a recipe given as a mapping (parsed YAML/JSON; a mergekit merge config is
    read as the recipe it maps to, ``composer.mergekit_config``) or return it as it is."""
    if isinstance(data, Recipe):
        return data
    if not isinstance(data, dict):
        raise RecipeError("invalid recipe: expected a mapping with method, inputs and output")
    if is_mergekit_config(data):
        data = from_mergekit(data)
    try:
        return Recipe.model_validate(data)
    except ValidationError as error:
        raise RecipeError(_format_errors(error)) from None


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file (YAML, or JSON by the ``.json`` suffix)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RecipeError(f"cannot read recipe {path}: {error.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise RecipeError(f"recipe {path} is not valid {path.suffix or 'YAML'}: {error}") from None
    return parse_recipe(data)
