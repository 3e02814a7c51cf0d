"""mergekit merge configs (``merge_method``, ``models``, ``base_model``, ``parameters``)
read as Lorry recipes, so that mergekit users need not learn a second format.

The methods share their names and parameters (Lorry runs mergekit's own
implementations), so the mapping is direct::

    merge_method: ties                    method: ties
    base_model: ./base                    inputs:
    models:                                 - adapter: ./sql-gen
      - model: ./base+./sql-gen               weight: 1.0
        parameters: {weight: 1.0,             density: 0.7
                     density: 0.7}        parameters: {lambda: 1.0}
    parameters: {lambda: 1.0}             output: {type: merged, base: ./base}
    dtype: bfloat16                       (dtype: bfloat16)

A model is a LoRA adapter directory, or mergekit's ``BASE+ADAPTER`` form; the base
model listed as a model of its own (as mergekit's examples do) is not an input. With a
``base_model`` the output is the merged model, as mergekit writes; without one, an
adapter. What Lorry cannot express (per-layer gradients, ``slices``, methods it does
not have) is refused with what to change.
"""

from __future__ import annotations

from typing import Any

from composer.errors import RecipeError

__all__ = ["from_mergekit", "is_mergekit_config"]

_PER_INPUT = ("weight", "density", "epsilon", "gamma")
_GLOBAL = ("density", "lambda", "epsilon", "gamma", "normalize", "rescale", "int8_mask")
_DTYPES = ("float32", "float16", "bfloat16")
_IGNORED = ("tokenizer_source", "tokenizer", "chat_template", "name")
"""mergekit keys about the tokenizer and naming: a LoRA merge keeps the base's tokenizer."""


def is_mergekit_config(data: Any) -> bool:
    return isinstance(data, dict) and "merge_method" in data


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, list | dict):
        raise RecipeError(
            f"mergekit config: {where} is a per-layer gradient or filter ({value!r}); Lorry "
            "takes one value per input: give a number"
        )
    return value


def _input(entry: Any, base: str | None, index: int) -> dict[str, Any] | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
        raise RecipeError(f"mergekit config: models[{index}] needs model: a path")
    model: str = entry["model"]
    model_base, plus, adapter = model.rpartition("+")
    if not plus:
        if model == base:
            return None  # mergekit lists the base model itself; it is not a delta
        adapter = model
    elif base is not None and model_base != base:
        raise RecipeError(
            f"mergekit config: models[{index}] is {model!r}, an adapter of {model_base!r}, "
            f"but base_model is {base!r}; Lorry merges adapters of one base model"
        )
    item: dict[str, Any] = {"adapter": adapter}
    parameters = entry.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RecipeError(f"mergekit config: models[{index}].parameters must be a mapping")
    for name, value in parameters.items():
        if name not in _PER_INPUT:
            raise RecipeError(
                f"mergekit config: models[{index}].parameters.{name} has no Lorry equivalent "
                f"per input (Lorry takes {', '.join(_PER_INPUT)})"
            )
        item[name] = _scalar(value, f"models[{index}].parameters.{name}")
    return item


def _base_of(data: dict[str, Any]) -> str | None:
    base = data.get("base_model")
    if base is None:
        forms = {m["model"].rpartition("+")[0] for m in data.get("models") or [] if _plus(m)}
        return forms.pop() if len(forms) == 1 else None
    if not isinstance(base, str):
        raise RecipeError("mergekit config: base_model must be a path")
    return base


def _plus(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("model"), str) and "+" in entry["model"]


def from_mergekit(data: dict[str, Any]) -> dict[str, Any]:
    """The Lorry recipe (as a mapping, for ``Recipe``) of a mergekit merge config."""
    if "slices" in data:
        raise RecipeError(
            "mergekit config: slices (layer ranges of models) have no Lorry equivalent; "
            "list the adapters under models"
        )
    unknown = sorted(
        set(data)
        - {"merge_method", "models", "base_model", "parameters", "dtype", "out_dtype"}
        - set(_IGNORED)
    )
    if unknown:
        raise RecipeError(f"mergekit config: {', '.join(unknown)} have no Lorry equivalent")
    base = _base_of(data)
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise RecipeError("mergekit config: models must list the adapters to merge")
    inputs = [item for i, m in enumerate(models) if (item := _input(m, base, i)) is not None]
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RecipeError("mergekit config: parameters must be a mapping")
    for name in parameters:
        if name not in _GLOBAL:
            raise RecipeError(
                f"mergekit config: parameters.{name} has no Lorry equivalent "
                f"(Lorry takes {', '.join(_GLOBAL)})"
            )
    output: dict[str, Any] = {"type": "adapter"}
    if base is not None:
        output = {"type": "merged", "base": base}
        dtype = data.get("out_dtype") or data.get("dtype")
        if dtype in _DTYPES:
            output["dtype"] = dtype
    return {
        "method": data["merge_method"],
        "inputs": inputs,
        "parameters": {k: _scalar(v, f"parameters.{k}") for k, v in parameters.items()},
        "output": output,
    }
