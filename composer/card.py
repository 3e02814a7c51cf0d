"""Model cards (README.md) and the machine-readable composition record of an output."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from composer.recipe import Recipe

__all__ = ["InputRecord", "ModuleRecord", "library_versions", "render_card"]

_LIBRARIES = ("lorry", "torch", "safetensors", "mergekit")


@dataclass(frozen=True)
class InputRecord:
    """One input of a composition as the card and the result report it."""

    adapter: str
    sha256: str
    weight: float
    modules: int


@dataclass(frozen=True)
class ModuleRecord:
    """One composed module: its shape, the rank written (None for merged) and the error."""

    name: str
    shape: tuple[int, int]
    rank: int | None
    error: float
    inputs: int


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def recipe_document(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data, without unset fields, in the contract's spelling."""
    document: dict[str, Any] = recipe.model_dump(mode="json", by_alias=True, exclude_none=True)
    return document


def _rank_note(recipe: Recipe, exact_method: bool) -> str:
    if recipe.output.type == "merged":
        return "The full delta of every module was added to the base weights (no rank limit)."
    rank = recipe.output.effective_rank
    if rank == "exact":
        if exact_method:
            return (
                "Rank `exact`: the input factors are stacked, so each module's rank is the sum "
                "of its inputs' ranks and the result is exact."
            )
        return (
            "Rank `exact` on a sparse method: each module keeps the full numerical rank of its "
            "merged delta (singular values above float32 round-off)."
        )
    if isinstance(rank, int):
        how = (
            "QR of the stacked factors and an SVD of the small core"
            if exact_method
            else (f"a truncated {recipe.output.svd} SVD of the merged delta")
        )
        return f"Rank {rank} per module (at most), by {how}."
    return (
        f"Per-module ranks keep at least {rank:.6g} of each delta's energy (squared Frobenius "
        "norm), chosen from its singular values."
    )


def render_card(
    recipe: Recipe,
    *,
    base_model: str | None,
    inputs: Sequence[InputRecord],
    modules: Sequence[ModuleRecord],
    exact_method: bool,
) -> str:
    """A README.md with Hugging Face front matter, the lineage and the per-module errors."""
    merged = recipe.output.type == "merged"
    front: dict[str, Any] = {}
    if base_model:
        front["base_model"] = base_model
    front["library_name"] = "transformers" if merged else "peft"
    front["tags"] = ["lorry", "merge", "lora", recipe.method]
    lines = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", ""]
    kind = "merged model" if merged else "LoRA adapter"
    lines += [
        f"# Composed {kind}",
        "",
        f"Composed by Lorry with the `{recipe.method}` method from {len(inputs)} "
        f"adapter{'s' if len(inputs) != 1 else ''}. {_rank_note(recipe, exact_method)}",
        "",
        "## Lineage",
        "",
        "| # | adapter | weight | modules | sha256 of adapter_model.safetensors |",
        "|---|---------|--------|---------|-------------------------------------|",
    ]
    for number, item in enumerate(inputs, start=1):
        lines.append(
            f"| {number} | `{item.adapter}` | {item.weight:g} | {item.modules} | `{item.sha256}` |"
        )
    lines += [
        "",
        "## Recipe",
        "",
        f"Method `{recipe.method}`, seed {recipe.parameters.seed}.",
        "",
        "```yaml",
        yaml.safe_dump(recipe_document(recipe), sort_keys=False).rstrip(),
        "```",
        "",
        "## Libraries",
        "",
    ]
    lines += [f"- {name} {version}" for name, version in library_versions().items()]
    lines += [
        "",
        "## Per-module error",
        "",
        "Relative Frobenius error of the written module against the delta the method "
        "defined (0 for exact).",
        "",
        "| module | shape | rank | inputs | relative error |",
        "|--------|-------|------|--------|----------------|",
    ]
    for module in modules:
        rank = "full" if module.rank is None else str(module.rank)
        shape = f"{module.shape[0]}x{module.shape[1]}"
        lines.append(
            f"| `{module.name}` | {shape} | {rank} | {module.inputs} | {module.error:.3e} |"
        )
    return "\n".join(lines) + "\n"
