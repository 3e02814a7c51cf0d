"""A mergekit merge config is read as the Lorry recipe it maps to: `lorry compose` of the
mergekit YAML writes the same merged model, byte for byte, as the equivalent recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from composer import RecipeError
from composer.recipe import parse_recipe
from tests.composer.helpers import compose_app as _app


def _mergekit(base: Path, adapter_a: Path, adapter_b: Path) -> dict:
    return {
        "merge_method": "ties",
        "base_model": str(base),
        "models": [
            {"model": str(base)},
            {"model": f"{base}+{adapter_a}", "parameters": {"weight": 1.0, "density": 0.7}},
            {"model": str(adapter_b), "parameters": {"weight": 0.5}},
        ],
        "parameters": {"density": 0.5, "normalize": True},
        "dtype": "float32",
    }


def test_a_mergekit_config_maps_onto_the_recipe(
    tiny_llama_dir: Path, adapter_a: Path, adapter_b: Path
) -> None:
    recipe = parse_recipe(_mergekit(tiny_llama_dir, adapter_a, adapter_b))

    assert recipe.method == "ties"
    assert [(i.adapter, i.weight, i.density) for i in recipe.inputs] == [
        (str(adapter_a), 1.0, 0.7),
        (str(adapter_b), 0.5, None),
    ]
    assert recipe.parameters.density == 0.5 and recipe.parameters.normalize is True
    assert recipe.output.type == "merged" and recipe.output.base == str(tiny_llama_dir)
    assert recipe.output.dtype == "float32"


def test_compose_of_a_mergekit_yaml_equals_compose_of_the_recipe(
    tmp_path: Path, tiny_llama_dir: Path, adapter_a: Path, adapter_b: Path
) -> None:
    mergekit = tmp_path / "mergekit.yaml"
    mergekit.write_text(yaml.safe_dump(_mergekit(tiny_llama_dir, adapter_a, adapter_b)))
    lorry = tmp_path / "recipe.yaml"
    lorry.write_text(
        yaml.safe_dump(
            {
                "method": "ties",
                "inputs": [
                    {"adapter": str(adapter_a), "weight": 1.0, "density": 0.7},
                    {"adapter": str(adapter_b), "weight": 0.5},
                ],
                "parameters": {"density": 0.5, "normalize": True},
                "output": {"type": "merged", "base": str(tiny_llama_dir), "dtype": "float32"},
            }
        )
    )
    runner = CliRunner()
    for recipe, out in ((mergekit, "from-mergekit"), (lorry, "from-recipe")):
        result = runner.invoke(_app(), ["compose", str(recipe), "--out", str(tmp_path / out)])
        assert result.exit_code == 0, result.output

    written = sorted(p.name for p in (tmp_path / "from-recipe").iterdir() if p.is_file())
    assert any(name.endswith(".safetensors") for name in written)
    for name in written:
        if name.endswith(".safetensors"):
            assert (tmp_path / "from-mergekit" / name).read_bytes() == (
                tmp_path / "from-recipe" / name
            ).read_bytes(), name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"slices": [{"sources": []}]}, "slices"),
        ({"parameters": {"weight": [0.1, 0.9]}}, "parameters.weight has no Lorry equivalent"),
        (
            {"models": [{"model": "./a", "parameters": {"density": [0.2, 0.8]}}]},
            "per-layer gradient",
        ),
        ({"models": [{"model": "./other+./a"}]}, "Lorry merges adapters of one base model"),
        ({"merge_method": "slerp"}, "unknown method 'slerp'"),
    ],
)
def test_what_lorry_cannot_express_is_refused_naming_it(change: dict, message: str) -> None:
    config = {"merge_method": "ties", "base_model": "./base", "models": [{"model": "./a"}]}

    with pytest.raises(RecipeError, match=message):
        parse_recipe({**config, **change})
