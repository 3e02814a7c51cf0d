"""Bad recipes and incompatible inputs: a clear error before any work, nothing left behind."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from composer import (
    AdapterNotFound,
    ComposerError,
    IncompatibleInputs,
    InvalidBaseModel,
    OutputExists,
    RecipeError,
    UnsupportedAdapter,
    compose,
    load_recipe,
    parse_recipe,
    plan,
)
from composer.recipe import MAX_INPUTS, MAX_RANK


def _copy_adapter(source: Path, target: Path, **config_changes: Any) -> Path:
    shutil.copytree(source, target)
    config = json.loads((target / "adapter_config.json").read_text())
    config.update(config_changes)
    (target / "adapter_config.json").write_text(json.dumps(config))
    return target


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [path for path in out.parent.iterdir() if path.name.startswith(f".{out.name}.")]


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ({"method": "slerp", "inputs": [{"adapter": "x"}]}, "unknown method 'slerp'"),
        ({"method": "linear", "inputs": []}, "inputs"),
        ({"method": "linear", "inputs": [{"adapter": "x", "wieght": 1}]}, "inputs.0.wieght"),
        ({"method": "linear", "inputs": [{"adapter": "x", "density": 0.5}]}, "does not use"),
        (
            {"method": "ties", "inputs": [{"adapter": "x"}], "parameters": {"density": 1.5}},
            "density",
        ),
        ({"method": "negation", "inputs": [{"adapter": "x"}, {"adapter": "y"}]}, "exactly one"),
        (
            {"method": "linear", "inputs": [{"adapter": "x"}], "output": {"rank": 0}},
            "between 1 and",
        ),
        ({"method": "linear", "inputs": [{"adapter": "x"}], "output": {"rank": 1.5}}, "energy"),
        (
            {"method": "linear", "inputs": [{"adapter": "x"}], "output": {"type": "merged"}},
            "output.base",
        ),
        (
            {
                "method": "linear",
                "inputs": [{"adapter": "x"}],
                "output": {"type": "merged", "base": "b", "rank": 4},
            },
            "no rank",
        ),
        ({"method": "linear", "inputs": [{"adapter": "x"}], "device": "tpu"}, "device"),
        (
            {"method": "linear", "inputs": [{"adapter": "x"}], "output": {"svd": "exact"}},
            "output.svd",
        ),
        ({"method": "linear", "inputs": [{"adapter": "x"}], "output": {"rank": "16"}}, "rank"),
        (
            {
                "method": "della",
                "inputs": [{"adapter": "x"}],
                "parameters": {"density": 0.9, "epsilon": 0.2},
            },
            "epsilon",
        ),
    ],
)
def test_bad_recipe_is_refused_with_a_clear_message(
    tmp_path: Path, recipe: dict[str, Any], message: str
) -> None:
    with pytest.raises(RecipeError, match="invalid recipe") as caught:
        compose(recipe, tmp_path / "out")
    assert message in caught.value.message
    _assert_nothing_written(tmp_path / "out")


def _linear(**changes: Any) -> dict[str, Any]:
    return {"method": "linear", "inputs": [{"adapter": "x"}], **changes}


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ({"method": "linear", "inputs": [{"adapter": "x", "weight": math.nan}]}, "finite"),
        ({"method": "linear", "inputs": [{"adapter": "x", "weight": math.inf}]}, "finite"),
        ({"method": "linear", "inputs": [{"adapter": "x", "weight": -math.inf}]}, "finite"),
        ({"method": "linear", "inputs": [{"adapter": "x", "weight": 1e308}]}, "less than"),
        ({"method": "linear", "inputs": [{"adapter": "x", "weight": -101}]}, "greater than"),
        (
            {
                "method": "task_arithmetic",
                "inputs": [{"adapter": "x"}],
                "parameters": {"lambda": 1e308},
            },
            "parameters.lambda",
        ),
        (
            {"method": "ties", "inputs": [{"adapter": "x", "density": math.nan}]},
            "inputs.0.density: Input should be a finite number",
        ),
        (
            {
                "method": "breadcrumbs",
                "inputs": [{"adapter": "x"}],
                "parameters": {"gamma": math.inf},
            },
            "parameters.gamma",
        ),
        (
            {"method": "della", "inputs": [{"adapter": "x", "epsilon": math.nan}]},
            "inputs.0.epsilon",
        ),
        (_linear(output={"rank": 10**9}), f"between 1 and {MAX_RANK}"),
        (_linear(output={"rank": math.nan}), "energy"),
        (_linear(output={"rank": 1e308}), "energy"),
        (_linear(parameters={"seed": 2**64}), "parameters.seed"),
        (
            {"method": "linear", "inputs": [{"adapter": "x"}] * (MAX_INPUTS + 1)},
            f"at most {MAX_INPUTS} items",
        ),
    ],
)
def test_non_finite_and_absurd_numbers_are_refused(recipe: dict[str, Any], message: str) -> None:
    with pytest.raises(RecipeError, match="invalid recipe") as caught:
        parse_recipe(recipe)
    assert message in caught.value.message


def test_recipe_errors_list_at_most_twenty_problems() -> None:
    recipe = {"method": "linear", "inputs": [{"adapter": "x", "weight": math.nan}] * 500}
    with pytest.raises(RecipeError) as caught:
        parse_recipe(recipe)
    assert caught.value.message.count("finite number") == 20
    assert "and 480 more errors" in caught.value.message


def test_yaml_and_json_spellings_of_non_finite_numbers_are_refused(tmp_path: Path) -> None:
    for value in (".nan", ".inf", "-.Inf", "1e308"):
        (tmp_path / "recipe.yaml").write_text(
            f"method: linear\ninputs:\n  - adapter: ./x\n    weight: {value}\n"
        )
        with pytest.raises(RecipeError, match="inputs.0.weight"):
            load_recipe(tmp_path / "recipe.yaml")
    for value in ("NaN", "Infinity", "-Infinity"):
        (tmp_path / "recipe.json").write_text(
            f'{{"method": "linear", "inputs": [{{"adapter": "x", "weight": {value}}}]}}'
        )
        with pytest.raises(RecipeError, match="inputs.0.weight"):
            load_recipe(tmp_path / "recipe.json")


def test_recipes_load_from_yaml_and_json_with_paths_relative_to_the_file(
    tmp_path: Path, adapter_a: Path
) -> None:
    shutil.copytree(adapter_a, tmp_path / "task")
    (tmp_path / "recipe.yaml").write_text(
        "method: ties\ninputs:\n  - adapter: ./task\n    weight: 1.0\n"
        "parameters: {density: 0.5, lambda: 1.0, seed: 0}\noutput:\n  rank: 4\n"
    )
    (tmp_path / "recipe.json").write_text(
        json.dumps({"method": "linear", "inputs": [{"adapter": "task"}]})
    )

    recipe = load_recipe(tmp_path / "recipe.yaml")
    assert recipe.parameters.lambda_ == 1.0 and recipe.output.rank == 4
    assert plan(tmp_path / "recipe.yaml").adapters[0].path == tmp_path / "task"
    assert plan(tmp_path / "recipe.json").recipe.method == "linear"


def test_unparsable_recipe_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "recipe.yaml").write_text("method: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid"):
        load_recipe(tmp_path / "recipe.yaml")
    with pytest.raises(RecipeError, match="cannot read"):
        load_recipe(tmp_path / "missing.yaml")


def test_missing_adapter_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AdapterNotFound, match="adapter_config.json"):
        compose(
            {"method": "linear", "inputs": [{"adapter": str(tmp_path / "nope")}]}, tmp_path / "out"
        )
    _assert_nothing_written(tmp_path / "out")


def test_inputs_with_disagreeing_shapes_are_refused_naming_module_and_shapes(
    tmp_path: Path, adapter_a: Path, adapter_b: Path
) -> None:
    bad = _copy_adapter(adapter_b, tmp_path / "bad")
    tensors = load_file(bad / "adapter_model.safetensors")
    key = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    tensors[key] = torch.zeros(4, 48)
    save_file(tensors, str(bad / "adapter_model.safetensors"))

    recipe = {"method": "linear", "inputs": [{"adapter": str(adapter_a)}, {"adapter": str(bad)}]}
    with pytest.raises(IncompatibleInputs) as caught:
        compose(recipe, tmp_path / "out")
    assert "model.layers.0.self_attn.q_proj" in caught.value.message
    assert "[64, 64]" in caught.value.message and "[64, 48]" in caught.value.message
    _assert_nothing_written(tmp_path / "out")


def test_inputs_with_different_base_models_are_refused_unless_the_recipe_names_one(
    tmp_path: Path, adapter_a: Path, adapter_b: Path
) -> None:
    other = _copy_adapter(adapter_b, tmp_path / "other", base_model_name_or_path="acme/other-base")
    recipe: dict[str, Any] = {
        "method": "linear",
        "inputs": [{"adapter": str(adapter_a)}, {"adapter": str(other)}],
    }
    with pytest.raises(IncompatibleInputs, match="base_model"):
        compose(recipe, tmp_path / "out")
    _assert_nothing_written(tmp_path / "out")

    compose({**recipe, "base_model": "acme/chosen"}, tmp_path / "out")
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "acme/chosen"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"use_dora": True}, "DoRA"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"bias": "all"}, "bias"),
        ({"peft_type": "IA3"}, "peft_type"),
    ],
)
def test_unsupported_adapter_features_are_refused(
    tmp_path: Path, adapter_a: Path, change: dict[str, Any], message: str
) -> None:
    adapter = _copy_adapter(adapter_a, tmp_path / "adapter", **change)
    with pytest.raises(UnsupportedAdapter, match=message):
        compose({"method": "linear", "inputs": [{"adapter": str(adapter)}]}, tmp_path / "out")
    _assert_nothing_written(tmp_path / "out")


def test_merged_output_needs_a_base_with_the_adapted_weights(
    tmp_path: Path, tiny_llama_dir: Path, adapter_a: Path
) -> None:
    recipe = {
        "method": "linear",
        "inputs": [{"adapter": str(adapter_a)}],
        "output": {"type": "merged", "base": str(tmp_path / "no-base")},
    }
    with pytest.raises(InvalidBaseModel, match="not a directory"):
        compose(recipe, tmp_path / "out")

    base = tmp_path / "base"
    shutil.copytree(tiny_llama_dir, base)
    tensors = load_file(base / "model.safetensors")
    del tensors["model.layers.1.self_attn.v_proj.weight"]
    save_file(tensors, str(base / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(InvalidBaseModel, match=r"model\.layers\.1\.self_attn\.v_proj\.weight"):
        compose({**recipe, "output": {"type": "merged", "base": str(base)}}, tmp_path / "out")
    _assert_nothing_written(tmp_path / "out")


def test_non_empty_output_is_refused_unless_overwrite(tmp_path: Path, adapter_a: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    recipe = {"method": "linear", "inputs": [{"adapter": str(adapter_a)}]}
    with pytest.raises(OutputExists, match="not empty"):
        compose(recipe, out)
    assert (out / "keep.txt").read_text() == "mine"

    compose(recipe, out, overwrite=True)
    assert not (out / "keep.txt").exists()
    assert (out / "adapter_model.safetensors").is_file()


def test_an_error_during_the_work_leaves_no_output_behind(
    tmp_path: Path, adapter_a: Path, adapter_b: Path
) -> None:
    def fail_on_third(event: Any) -> None:
        if event.done == 3:
            raise RuntimeError("interrupted")

    recipe = {
        "method": "linear",
        "inputs": [{"adapter": str(adapter_a)}, {"adapter": str(adapter_b)}],
    }
    with pytest.raises(RuntimeError, match="interrupted"):
        compose(recipe, tmp_path / "out", progress=fail_on_third)
    _assert_nothing_written(tmp_path / "out")


def test_every_composer_error_has_a_stable_code() -> None:
    for error_class in (
        RecipeError,
        AdapterNotFound,
        IncompatibleInputs,
        UnsupportedAdapter,
        OutputExists,
    ):
        assert issubclass(error_class, ComposerError)
        assert error_class.code != ComposerError.code


def test_output_directory_gets_ordinary_permissions(tmp_path: Path, adapter_a: Path) -> None:
    import os

    umask = os.umask(0o022)
    os.umask(umask)
    compose({"method": "linear", "inputs": [{"adapter": str(adapter_a)}]}, tmp_path / "out")
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask


def test_resolve_hook_reads_refs_from_local_directories_and_keeps_them_in_the_lineage(
    tmp_path: Path, adapter_a: Path
) -> None:
    def resolve(ref: str) -> Path:
        assert ref == "acme/sql-gen@production"
        return adapter_a

    recipe = {"method": "linear", "inputs": [{"adapter": "acme/sql-gen@production"}]}
    result = compose(recipe, tmp_path / "out", resolve=resolve)

    assert result.inputs[0].adapter == "acme/sql-gen@production"
    assert "`acme/sql-gen@production`" in (tmp_path / "out" / "README.md").read_text()
