"""The public entry points: ``plan`` checks a recipe and its inputs, ``compose`` runs it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from composer.adapters import AdapterInfo, FactorReader, read_adapter
from composer.blocks import ModuleBuffers
from composer.card import InputRecord, ModuleRecord, recipe_document, render_card
from composer.compute import module_delta, module_factors
from composer.errors import DeviceUnavailable, IncompatibleInputs, InvalidBaseModel
from composer.lowrank import LowRankFactors
from composer.merged import DTYPE_BY_NAME, BaseModel, Delta, read_base_model, write_merged
from composer.methods import MergeMethod, get_method
from composer.recipe import Recipe, load_recipe, parse_recipe
from composer.writer import COMPOSITION_FILE, atomic_output, write_adapter, write_json

__all__ = [
    "ComposeResult",
    "CompositionPlan",
    "ProgressCallback",
    "ProgressEvent",
    "check_merge_shapes",
    "compose",
    "plan",
    "resolve_device",
]

logger = logging.getLogger(__name__)

DeviceName = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class ProgressEvent:
    """Reported after each module: ``done`` of ``total`` modules, the last one ``module``."""

    done: int
    total: int
    module: str


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class CompositionPlan:
    """A recipe whose inputs were all read and checked; nothing has been computed yet."""

    recipe: Recipe
    method: MergeMethod
    adapters: list[AdapterInfo]
    modules: dict[str, tuple[int, int]]
    base_model: str | None
    task_type: str | None
    device: torch.device
    base: BaseModel | None = None


@dataclass(frozen=True)
class ComposeResult:
    """What ``compose`` wrote, with per-module ranks and errors."""

    out_dir: Path
    output_type: str
    method: str
    base_model: str | None
    device: str
    inputs: list[InputRecord]
    modules: list[ModuleRecord] = field(default_factory=list)

    @property
    def max_error(self) -> float:
        return max((module.error for module in self.modules), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir)
        data["max_error"] = self.max_error
        return data


def resolve_device(name: DeviceName) -> torch.device:
    """``auto`` picks CUDA when it is available; asking for CUDA without it is an error."""
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "cuda":
        raise DeviceUnavailable("device 'cuda' was asked for but no CUDA device is available")
    return torch.device("cpu")


def _recipe_and_root(
    recipe: Recipe | Mapping[str, Any] | str | Path, root: Path | None
) -> tuple[Recipe, Path | None]:
    if isinstance(recipe, str | Path):
        path = Path(recipe)
        return load_recipe(path), root if root is not None else path.parent
    return parse_recipe(dict(recipe) if isinstance(recipe, Mapping) else recipe), root


def _union_modules(adapters: list[AdapterInfo]) -> dict[str, tuple[int, int]]:
    modules: dict[str, tuple[int, int]] = {}
    owners: dict[str, str] = {}
    for adapter in adapters:
        for name, info in adapter.modules.items():
            if name in modules and modules[name] != info.shape:
                raise IncompatibleInputs(
                    f"module {name} has shape {list(modules[name])} (out, in) in "
                    f"{owners[name]} but {list(info.shape)} in {adapter.source}: the inputs "
                    "were trained on different base models"
                )
            modules.setdefault(name, info.shape)
            owners.setdefault(name, adapter.source)
    return dict(sorted(modules.items()))


def _agreed_base_model(recipe: Recipe, adapters: list[AdapterInfo]) -> str | None:
    if recipe.base_model is not None:
        return recipe.base_model
    named = {adapter.base_model for adapter in adapters if adapter.base_model}
    if len(named) > 1:
        listing = "; ".join(f"{a.source}: {a.base_model}" for a in adapters)
        raise IncompatibleInputs(
            f"the inputs name different base models ({listing}). If they really share one "
            "base, set `base_model: <name>` in the recipe to say which"
        )
    return named.pop() if named else None


def check_merge_shapes(
    base: str, tensors: Mapping[str, Sequence[int]], modules: Mapping[str, tuple[int, int]]
) -> None:
    """Refuse a base model that the adapted ``modules`` (name -> (out, in)) do not fit:
    each needs a ``<name>.weight`` of that shape among the base's ``tensors`` (name ->
    shape, as its safetensors headers say). ``plan`` checks a merged output's base with
    it; the registry checks a merged export's base with it before any weight is read."""
    for name, shape in modules.items():
        found = tensors.get(f"{name}.weight")
        if found is None:
            raise InvalidBaseModel(
                f"base model {base} has no tensor {name}.weight, which the inputs adapt"
            )
        if tuple(found) != shape:
            raise IncompatibleInputs(
                f"module {name}: the inputs' delta is {list(shape)} (out, in) but the base "
                f"weight is {list(found)}"
            )


def _check_base(base: BaseModel, modules: dict[str, tuple[int, int]]) -> None:
    shapes = {name: entry.shape for name, entry in base.tensors.items()}
    check_merge_shapes(str(base.path), shapes, modules)


def plan(
    recipe: Recipe | Mapping[str, Any] | str | Path,
    *,
    root: Path | None = None,
    device: DeviceName | None = None,
    resolve: Callable[[str], Path] | None = None,
) -> CompositionPlan:
    """Validate a recipe and read every input (configs and shapes, not weights).

    Raises a ``ComposerError`` before any work if an input is missing, unsupported
    or incompatible. Relative adapter paths are taken from ``root``, which defaults
    to the recipe file's directory (or the working directory for an in-memory recipe).
    ``resolve`` maps an input's ``adapter`` string to a local directory (the service
    resolves registry refs this way); the lineage keeps the string as written.
    """
    recipe, root = _recipe_and_root(recipe, root)
    resolved = resolve_device(device or recipe.device)
    adapters = [
        read_adapter(
            item.adapter, root, location=resolve(item.adapter) if resolve is not None else None
        )
        for item in recipe.inputs
    ]
    modules = _union_modules(adapters)
    base_model = _agreed_base_model(recipe, adapters)
    task_types = {adapter.task_type for adapter in adapters}
    base = None
    if recipe.output.type == "merged":
        assert recipe.output.base is not None
        base_path = Path(recipe.output.base).expanduser()
        if not base_path.is_absolute() and root is not None:
            base_path = root / base_path
        base = read_base_model(base_path)
        _check_base(base, modules)
    return CompositionPlan(
        recipe=recipe,
        method=get_method(recipe.method),
        adapters=adapters,
        modules=modules,
        base_model=base_model,
        task_type=task_types.pop() if len(task_types) == 1 else None,
        device=resolved,
        base=base,
    )


def _input_records(plan: CompositionPlan) -> list[InputRecord]:
    return [
        InputRecord(
            adapter=adapter.source,
            sha256=adapter.sha256,
            weight=item.weight,
            modules=len(adapter.modules),
        )
        for adapter, item in zip(plan.adapters, plan.recipe.inputs, strict=True)
    ]


def _inputs_of(plan: CompositionPlan, module: str) -> int:
    return sum(module in adapter.modules for adapter in plan.adapters)


def _compose_adapter(
    plan: CompositionPlan, out: Path, progress: ProgressCallback | None
) -> list[ModuleRecord]:
    recipe, total = plan.recipe, len(plan.modules)
    factors: dict[str, LowRankFactors] = {}
    records = []
    buffers = ModuleBuffers()
    with torch.no_grad(), FactorReader(plan.adapters, plan.device) as reader:
        for done, (name, shape) in enumerate(plan.modules.items(), start=1):
            item = module_factors(plan.method, reader, name, shape, recipe, plan.device, buffers)
            factors[name] = LowRankFactors(a=item.a.cpu(), b=item.b.cpu(), error=item.error)
            records.append(ModuleRecord(name, shape, item.rank, item.error, _inputs_of(plan, name)))
            logger.debug("module %s: rank %d, error %.3e", name, item.rank, item.error)
            if progress is not None:
                progress(ProgressEvent(done=done, total=total, module=name))
    dtype = DTYPE_BY_NAME[recipe.output.dtype or "float32"]
    write_adapter(out, factors, dtype=dtype, base_model=plan.base_model, task_type=plan.task_type)
    return records


def _compose_merged(
    plan: CompositionPlan, out: Path, progress: ProgressCallback | None
) -> list[ModuleRecord]:
    assert plan.base is not None
    total = len(plan.modules)
    records: list[ModuleRecord] = []
    with torch.no_grad(), FactorReader(plan.adapters, plan.device) as reader:

        def delta_for(module: str) -> Delta | None:
            shape = plan.modules.get(module)
            if shape is None:
                return None
            delta = module_delta(plan.method, reader, module, shape, plan.recipe, plan.device)
            records.append(ModuleRecord(module, shape, None, 0.0, _inputs_of(plan, module)))
            if progress is not None:
                progress(ProgressEvent(done=len(records), total=total, module=module))
            return delta

        write_merged(
            plan.base, out, delta_for, dtype_name=plan.recipe.output.dtype, device=plan.device
        )
    return sorted(records, key=lambda record: record.name)


def compose(
    recipe: Recipe | Mapping[str, Any] | str | Path,
    out_dir: str | Path,
    *,
    root: Path | None = None,
    progress: ProgressCallback | None = None,
    device: DeviceName | None = None,
    overwrite: bool = False,
    resolve: Callable[[str], Path] | None = None,
) -> ComposeResult:
    """Run a recipe and write its output (an adapter or a merged model) to ``out_dir``.

    Every input is checked first (see ``plan``). The output is written into a
    temporary directory beside ``out_dir`` and renamed into place at the end, so
    an error leaves nothing behind. The same recipe and inputs give the same bytes.
    """
    checked = plan(recipe, root=root, device=device, resolve=resolve)
    recipe_model = checked.recipe
    inputs = _input_records(checked)
    with atomic_output(Path(out_dir), overwrite=overwrite) as work:
        if recipe_model.output.type == "merged":
            modules = _compose_merged(checked, work, progress)
        else:
            modules = _compose_adapter(checked, work, progress)
        card = render_card(
            recipe_model,
            base_model=checked.base_model,
            inputs=inputs,
            modules=modules,
            exact_method=checked.method.exact,
        )
        (work / "README.md").write_text(card, encoding="utf-8")
        write_json(
            work / COMPOSITION_FILE,
            {
                "recipe": recipe_document(recipe_model),
                "inputs": [asdict(item) for item in inputs],
                "modules": {
                    module.name: {"rank": module.rank, "error": module.error} for module in modules
                },
            },
        )
    return ComposeResult(
        out_dir=Path(out_dir),
        output_type=recipe_model.output.type,
        method=recipe_model.method,
        base_model=checked.base_model,
        device=str(checked.device),
        inputs=inputs,
        modules=modules,
    )
