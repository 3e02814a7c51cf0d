"""Upload validation: LoRA adapters (config, tensor names, ranks, shapes, DoRA) against PEFT."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from registry.config import Settings
from registry.errors import InvalidAdapter, InvalidSafetensors, TooLarge, UnsupportedAdapterType
from registry.validation import adapter_config, module_rank
from tests.registry.uploads import (
    DELETE,
    PREFIX,
    copy_adapter,
    edit_config,
    safetensors_blob,
    validate_directory,
)
from tests.support.factories import load_tiny_llama


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Plain settings: validation needs the limits only, not a database."""
    return Settings(home=tmp_path / "home")


def test_validate_adapter_returns_exact_metadata_of_real_peft_adapter(
    settings: Settings, lora_adapter_dir: Path, tiny_llama_dir: Path
) -> None:
    metadata = validate_directory(lora_adapter_dir, settings)
    modules: dict[str, dict[str, list[int]]] = {}
    for layer in (0, 1):
        modules[f"model.layers.{layer}.self_attn.q_proj"] = {"lora_A": [8, 64], "lora_B": [64, 8]}
        modules[f"model.layers.{layer}.self_attn.v_proj"] = {"lora_A": [8, 64], "lora_B": [32, 8]}
    assert metadata.to_dict() == {
        "peft_type": "LORA",
        "r": 8,
        "lora_alpha": 16,
        "use_rslora": False,
        "target_modules": ["q_proj", "v_proj"],
        "base_model_name_or_path": str(tiny_llama_dir),
        "rank_pattern": {},
        "alpha_pattern": {},
        "parameter_count": 2 * (8 * 64 + 64 * 8 + 8 * 64 + 32 * 8),
        "dtypes": ["F32"],
        "modules": modules,
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "bias": "none",
    }


def test_validate_adapter_applies_rank_pattern_like_peft(
    settings: Settings, patterned_adapter_dir: Path
) -> None:
    metadata = validate_directory(patterned_adapter_dir, settings).to_dict()
    assert metadata["use_rslora"] is True
    assert metadata["rank_pattern"] == {"layers.1.self_attn.q_proj": 4, "down_proj": 2}
    assert metadata["target_modules"] == ["down_proj", "q_proj", "v_proj"]
    assert metadata["modules"] == {
        "model.layers.0.mlp.down_proj": {"lora_A": [2, 128], "lora_B": [64, 2]},
        "model.layers.0.self_attn.q_proj": {"lora_A": [8, 64], "lora_B": [64, 8]},
        "model.layers.0.self_attn.v_proj": {"lora_A": [8, 64], "lora_B": [32, 8]},
        "model.layers.1.mlp.down_proj": {"lora_A": [2, 128], "lora_B": [64, 2]},
        "model.layers.1.self_attn.q_proj": {"lora_A": [4, 64], "lora_B": [64, 4]},
        "model.layers.1.self_attn.v_proj": {"lora_A": [8, 64], "lora_B": [32, 8]},
    }
    tensors = load_file(patterned_adapter_dir / "adapter_model.safetensors")
    assert metadata["parameter_count"] == sum(t.numel() for t in tensors.values())


def test_validate_adapter_records_dora_magnitudes(
    settings: Settings, dora_adapter_dir: Path
) -> None:
    metadata = validate_directory(dora_adapter_dir, settings).to_dict()
    assert metadata["use_dora"] is True
    assert metadata["modules"]["model.layers.0.self_attn.v_proj"] == {
        "lora_A": [4, 64],
        "lora_B": [32, 4],
        "lora_magnitude_vector": [32],
    }
    assert "task_type" not in metadata


@pytest.mark.parametrize(
    "module",
    [
        "model.layers.1.self_attn.q_proj",
        "model.layers.11.self_attn.q_proj",
        "model.layers.0.mlp.down_proj",
        "model.layers.0.self_attn.v_proj",
        "down_proj",
        "model.layers.0.mlp.xdown_proj",
    ],
)
def test_module_rank_matches_peft_pattern_lookup(module: str) -> None:
    from peft.utils.other import get_pattern_key

    pattern = {"layers.1.self_attn.q_proj": 4, r"layers\.1\d\..*q_proj": 6, "down_proj": 2}
    key = get_pattern_key(list(pattern), module)
    assert module_rank(module, 8, pattern) == (pattern.get(key, 8), key if key in pattern else None)


def test_module_rank_refuses_pattern_that_matches_too_slowly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(adapter_config, "PATTERN_TIMEOUT_S", 1e-6)
    module = "model." + "layer." * 3000 + "q_proj"
    with pytest.raises(InvalidAdapter, match="rank_pattern pattern .* takes too long"):
        module_rank(module, 8, {r"(?:(\w+)\.?)+\1\1[!?]": 4})


def test_validate_adapter_requires_adapter_config(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")
    (directory / "adapter_config.json").unlink()
    with pytest.raises(InvalidAdapter, match=r"no adapter_config.json.*save_pretrained"):
        validate_directory(directory, settings)


def test_validate_adapter_requires_safetensors_weights(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")
    (directory / "weights").mkdir()
    (directory / "adapter_model.safetensors").rename(directory / "weights" / "x.safetensors")
    with pytest.raises(InvalidAdapter, match=r"no adapter_model.safetensors.*save_pretrained"):
        validate_directory(directory, settings)


def test_validate_adapter_bounds_config_size(lora_adapter_dir: Path, tmp_path: Path) -> None:
    assert Settings(home=tmp_path).max_config_bytes == 1024 * 1024
    settings = Settings(home=tmp_path, max_config_bytes=100)
    with pytest.raises(
        TooLarge,
        match=r"adapter_config.json is \d+ bytes, over the limit of 100 \(LORRY_MAX_CONFIG",
    ):
        validate_directory(lora_adapter_dir, settings)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"{broken", "not valid UTF-8 JSON"), (b"\xff{}", "not valid UTF-8 JSON"), (b"[]", "object")],
)
def test_validate_adapter_rejects_unparsable_config(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path, content: bytes, problem: str
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")
    (directory / "adapter_config.json").write_bytes(content)
    with pytest.raises(InvalidAdapter, match=problem):
        validate_directory(directory, settings)


def test_validate_adapter_refuses_real_ia3_adapter(
    settings: Settings, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    from peft import IA3Config, get_peft_model

    model = get_peft_model(
        load_tiny_llama(tiny_llama_dir),
        IA3Config(target_modules=["v_proj"], feedforward_modules=[]),
    )
    model.save_pretrained(str(tmp_path / "ia3"))
    with pytest.raises(UnsupportedAdapterType) as info:
        validate_directory(tmp_path / "ia3", settings)
    assert "'IA3' is not supported" in info.value.message
    assert "LORA" in info.value.message
    assert "LoraConfig" in info.value.message


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"peft_type": DELETE}, "no peft_type"),
        ({"r": DELETE}, "r is missing; it must be a positive integer"),
        ({"r": 0}, "r is 0"),
        ({"r": "8"}, "r is '8'"),
        ({"r": True}, "r is True"),
        ({"lora_alpha": DELETE}, "lora_alpha is missing"),
        ({"lora_alpha": "16"}, "lora_alpha is '16'"),
        ({"target_modules": DELETE}, "target_modules is missing"),
        ({"target_modules": []}, "target_modules is []"),
        ({"target_modules": ["q_proj", 3]}, "target_modules is"),
        ({"use_rslora": "yes"}, "use_rslora is 'yes'; it must be true or false"),
        ({"rank_pattern": {"q_proj": 0}}, "rank_pattern['q_proj'] is 0"),
        ({"rank_pattern": ["q_proj"]}, "rank_pattern is ['q_proj']"),
        ({"alpha_pattern": {"q_proj": "x"}}, "alpha_pattern['q_proj'] is 'x'"),
        ({"rank_pattern": {"q_proj(": 4}}, "not a valid regular expression"),
        ({"target_modules": "q_proj("}, "not a valid regular expression"),
        ({"base_model_name_or_path": 3}, "base_model_name_or_path is 3"),
    ],
)
def test_validate_adapter_rejects_bad_config_field(
    settings: Settings,
    lora_adapter_dir: Path,
    tmp_path: Path,
    changes: dict[str, Any],
    problem: str,
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")
    edit_config(directory, **changes)
    with pytest.raises(InvalidAdapter) as info:
        validate_directory(directory, settings)
    assert problem in info.value.message


def test_validate_adapter_accepts_regex_target_modules_and_missing_rslora(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")
    edit_config(directory, target_modules=r".*\.(q|v)_proj", use_rslora=DELETE)
    metadata = validate_directory(directory, settings)
    assert metadata.target_modules == r".*\.(q|v)_proj"
    assert metadata.use_rslora is False


def _rewrite_tensors(
    directory: Path, edit: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
) -> None:
    path = directory / "adapter_model.safetensors"
    save_file(edit(load_file(path)), path)


def test_validate_adapter_rejects_module_outside_target_modules(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")
    edit_config(directory, target_modules=["q_proj"])
    with pytest.raises(InvalidAdapter) as info:
        validate_directory(directory, settings)
    assert "'model.layers.0.self_attn.v_proj' has LoRA weights but target_modules" in (
        info.value.message
    )
    assert "add it to target_modules" in info.value.message


@pytest.mark.parametrize(
    ("targets", "accepted"),
    [("all-linear", True), (r".*layers\.\d\.self_attn\.(q|v)_proj", True), ("q_proj", False)],
)
def test_validate_adapter_matches_string_target_modules_as_full_regex(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path, targets: str, accepted: bool
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")
    edit_config(directory, target_modules=targets)
    if accepted:
        assert validate_directory(directory, settings).target_modules == targets
    else:
        with pytest.raises(InvalidAdapter, match="does not select it"):
            validate_directory(directory, settings)


def test_validate_adapter_rejects_rank_mismatch(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")
    name = f"{PREFIX}.1.self_attn.v_proj"

    def shrink(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tensors[f"{name}.lora_A.weight"] = tensors[f"{name}.lora_A.weight"][:4].contiguous()
        tensors[f"{name}.lora_B.weight"] = tensors[f"{name}.lora_B.weight"][:, :4].contiguous()
        return tensors

    _rewrite_tensors(directory, shrink)
    with pytest.raises(InvalidAdapter) as info:
        validate_directory(directory, settings)
    message = info.value.message
    assert "'model.layers.1.self_attn.v_proj' has lora_A [4, 64] and lora_B [32, 4]" in message
    assert "rank 8 (from r)" in message


def test_validate_adapter_rejects_shapes_that_contradict_rank_pattern(
    settings: Settings, patterned_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = copy_adapter(patterned_adapter_dir, tmp_path / "a")
    edit_config(directory, rank_pattern={"down_proj": 3})
    with pytest.raises(InvalidAdapter) as info:
        validate_directory(directory, settings)
    assert "rank 3 (from rank_pattern['down_proj'])" in info.value.message
    assert "model.layers.0.mlp.down_proj" in info.value.message


def test_validate_adapter_rejects_inner_dimension_mismatch(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")
    name = f"{PREFIX}.0.self_attn.q_proj.lora_B.weight"

    def widen(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tensors[name] = torch.zeros(64, 6)
        return tensors

    _rewrite_tensors(directory, widen)
    with pytest.raises(InvalidAdapter, match=r"lora_B \[64, 6\].*expected lora_A \[8, in\]"):
        validate_directory(directory, settings)


def test_validate_adapter_rejects_unpaired_lora_a(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")

    def drop_b(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        del tensors[f"{PREFIX}.0.self_attn.q_proj.lora_B.weight"]
        return tensors

    _rewrite_tensors(directory, drop_b)
    with pytest.raises(
        InvalidAdapter, match=r"'model.layers.0.self_attn.q_proj' has lora_A but no lora_B"
    ):
        validate_directory(directory, settings)


@pytest.mark.parametrize(
    "name",
    [
        "base_model.model.lm_head.weight",
        f"{PREFIX}.0.self_attn.q_proj.lora_A.default.weight",
        f"{PREFIX}.0.self_attn.q_proj.lora_B.bias",
        "model.layers.0.self_attn.k_proj.lora_A.weight",
    ],
)
def test_validate_adapter_rejects_non_lora_tensor(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path, name: str
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")

    def add(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tensors[name] = torch.zeros(2, 2)
        return tensors

    _rewrite_tensors(directory, add)
    with pytest.raises(InvalidAdapter) as info:
        validate_directory(directory, settings)
    assert f"tensor {name!r} is not a LoRA factor" in info.value.message
    assert "modules_to_save" in info.value.message


def test_validate_adapter_rejects_dora_vector_without_factors(
    settings: Settings, dora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = copy_adapter(dora_adapter_dir, tmp_path / "a")
    name = f"{PREFIX}.1.self_attn.v_proj"

    def strip(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        del tensors[f"{name}.lora_A.weight"], tensors[f"{name}.lora_B.weight"]
        return tensors

    _rewrite_tensors(directory, strip)
    with pytest.raises(
        InvalidAdapter,
        match=r"'model.layers.1.self_attn.v_proj' has lora_magnitude_vector but no lora_A",
    ):
        validate_directory(directory, settings)


def test_validate_adapter_rejects_convolution_lora(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")
    name = f"{PREFIX}.0.self_attn.q_proj"

    def conv(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tensors[f"{name}.lora_A.weight"] = torch.zeros(8, 64, 1, 1)
        return tensors

    _rewrite_tensors(directory, conv)
    with pytest.raises(InvalidAdapter, match=r"lora_A of module .* \[8, 64, 1, 1\].*2-D"):
        validate_directory(directory, settings)


def test_validate_adapter_rejects_dora_vector_without_use_dora(
    settings: Settings, dora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = copy_adapter(dora_adapter_dir, tmp_path / "a")
    edit_config(directory, use_dora=False)
    with pytest.raises(InvalidAdapter, match=r"lora_magnitude_vector but .* use_dora: true"):
        validate_directory(directory, settings)


def test_validate_adapter_rejects_dora_module_without_magnitude(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")
    edit_config(directory, use_dora=True)
    with pytest.raises(InvalidAdapter, match=r"needs lora_magnitude_vector of shape \[64\]"):
        validate_directory(directory, settings)


def test_validate_adapter_accepts_embedding_factors(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")
    name = "base_model.model.model.embed_tokens"

    def embed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tensors[f"{name}.lora_embedding_A"] = torch.zeros(8, 128)
        tensors[f"{name}.lora_embedding_B"] = torch.zeros(64, 8)
        return tensors

    _rewrite_tensors(directory, embed)
    edit_config(directory, target_modules=["q_proj", "v_proj", "embed_tokens"])
    metadata = validate_directory(directory, settings)
    assert metadata.modules["model.embed_tokens"] == {"lora_A": [8, 128], "lora_B": [64, 8]}


def test_validate_adapter_rejects_empty_weights(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")
    (directory / "adapter_model.safetensors").write_bytes(safetensors_blob({}))
    with pytest.raises(InvalidAdapter, match="holds no tensors"):
        validate_directory(directory, settings)


def test_validate_adapter_reports_corrupt_weights_as_invalid_safetensors(
    settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    directory = copy_adapter(lora_adapter_dir, tmp_path / "a")
    (directory / "adapter_model.safetensors").write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(InvalidSafetensors, match="adapter_model.safetensors"):
        validate_directory(directory, settings)
