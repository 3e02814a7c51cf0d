"""PEFT LoRA adapters exported to GGUF LoRA adapters, read back with gguf.GGUFReader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from composer import InvalidBaseModel, OutputExists, UnsupportedAdapter
from composer.export import UnsupportedArchitecture, export_gguf
from tests.export.deltas import (
    GGUF_NAMES,
    N_HEAD,
    expected_in_gguf_layout,
    gguf_deltas,
    peft_deltas,
)
from tests.export.reading import metadata, permute_like_llama_cpp, tensors
from tests.support.factories import build_lora_adapter, load_tiny_llama


def test_adapter_gguf_has_llama_cpp_lora_metadata(
    tiny_llama_dir: Path, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "adapter.gguf"
    result = export_gguf(lora_adapter_dir, out, base=tiny_llama_dir, name="acme/sql-gen@3")

    meta = metadata(out)
    assert meta["general.architecture"] == "llama"
    assert meta["general.type"] == "adapter"
    assert meta["adapter.type"] == "lora"
    assert meta["adapter.lora.alpha"] == pytest.approx(16.0)
    assert meta["general.name"] == "acme/sql-gen@3"
    assert meta["general.quantization_version"] == 2
    assert (result.kind, result.architecture, result.outtype) == ("adapter", "llama", "f32")
    assert result.size == out.stat().st_size
    assert list(tmp_path.iterdir()) == [out]


def test_adapter_tensor_names_shapes_and_factors_match_the_source(
    tiny_llama_dir: Path, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    from safetensors.numpy import load_file

    out = tmp_path / "adapter.gguf"
    export_gguf(lora_adapter_dir, out, base=tiny_llama_dir)
    source = load_file(str(lora_adapter_dir / "adapter_model.safetensors"))
    read = tensors(out)

    expected_names = {
        f"blk.{layer}.{name}.weight.{factor}"
        for layer in range(2)
        for name in ("attn_q", "attn_v")
        for factor in ("lora_a", "lora_b")
    }
    assert set(read) == expected_names
    for layer in range(2):
        prefix = f"base_model.model.model.layers.{layer}.self_attn"
        a_v, b_v = (
            source[f"{prefix}.v_proj.lora_A.weight"],
            source[f"{prefix}.v_proj.lora_B.weight"],
        )
        assert read[f"blk.{layer}.attn_v.weight.lora_a"][0] == "F32"
        np.testing.assert_array_equal(read[f"blk.{layer}.attn_v.weight.lora_a"][1], a_v)
        np.testing.assert_array_equal(read[f"blk.{layer}.attn_v.weight.lora_b"][1], b_v)
        a_q, b_q = (
            source[f"{prefix}.q_proj.lora_A.weight"],
            source[f"{prefix}.q_proj.lora_B.weight"],
        )
        np.testing.assert_array_equal(read[f"blk.{layer}.attn_q.weight.lora_a"][1], a_q)
        # q rows are reordered for llama.cpp's rope, exactly as its converter does
        np.testing.assert_array_equal(
            read[f"blk.{layer}.attn_q.weight.lora_b"][1], permute_like_llama_cpp(b_q, N_HEAD)
        )
        assert read[f"blk.{layer}.attn_q.weight.lora_a"][1].shape == (8, 64)
        assert read[f"blk.{layer}.attn_q.weight.lora_b"][1].shape == (64, 8)


@pytest.mark.parametrize(
    ("outtype", "rtol", "types"),
    [
        ("f32", 1e-6, {"F32"}),
        ("f16", 2e-3, {"F16"}),
        ("bf16", 2e-2, {"BF16"}),
        ("q8_0", 3e-2, {"Q8_0", "F16"}),  # rows of r=4/8 values are not Q8_0 blocks: F16
    ],
)
def test_adapter_products_equal_the_peft_deltas(
    tiny_llama_dir: Path,
    full_adapter_dir: Path,
    tmp_path: Path,
    outtype: str,
    rtol: float,
    types: set[str],
) -> None:
    out = tmp_path / f"adapter-{outtype}.gguf"
    export_gguf(full_adapter_dir, out, base=tiny_llama_dir, outtype=outtype)

    assert {kind for kind, _ in tensors(out).values()} == types
    expected = peft_deltas(tiny_llama_dir, full_adapter_dir)
    written = gguf_deltas(out)
    assert set(written) == set(expected)
    assert len(written) == 2 * len(GGUF_NAMES)
    for name, delta in expected.items():
        want = expected_in_gguf_layout(name, delta)
        error = np.linalg.norm(written[name] - want) / np.linalg.norm(want)
        assert error < rtol, (name, error)


def test_rslora_and_alpha_pattern_scales_are_folded_into_b(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    adapter = build_lora_adapter(
        tiny_llama_dir,
        tmp_path / "rslora",
        r=8,
        lora_alpha=16,
        target_modules=("q_proj", "k_proj", "down_proj"),
        use_rslora=True,
        rank_pattern={"down_proj": 2},
    )
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["alpha_pattern"] = {"k_proj": 4}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    out = tmp_path / "rslora.gguf"
    export_gguf(adapter, out, base=tiny_llama_dir)

    expected = peft_deltas(tiny_llama_dir, adapter)
    written = gguf_deltas(out)
    assert set(written) == set(expected)
    for name, delta in expected.items():
        np.testing.assert_allclose(
            written[name], expected_in_gguf_layout(name, delta), rtol=1e-4, atol=1e-6
        )


def test_base_model_comes_from_the_adapter_config_when_it_is_a_local_directory(
    lora_adapter_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "adapter.gguf"
    assert export_gguf(lora_adapter_dir, out).architecture == "llama"


def test_qwen2_adapter_keeps_the_row_order(qwen2_with_tokenizer: Path, tmp_path: Path) -> None:
    adapter = build_lora_adapter(
        qwen2_with_tokenizer, tmp_path / "qwen-lora", target_modules=("q_proj", "k_proj")
    )
    out = tmp_path / "qwen.gguf"
    export_gguf(adapter, out, base=qwen2_with_tokenizer)

    from safetensors.numpy import load_file

    source = load_file(str(adapter / "adapter_model.safetensors"))
    read = tensors(out)
    assert metadata(out)["general.architecture"] == "qwen2"
    np.testing.assert_array_equal(
        read["blk.1.attn_k.weight.lora_b"][1],
        source["base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight"],
    )


def _copy_with_config(source: Path, target: Path, file: str, **changes: object) -> Path:
    shutil.copytree(source, target)
    config = json.loads((target / file).read_text())
    config.update(changes)
    (target / file).write_text(json.dumps(config))
    return target


def test_unsupported_base_architecture_is_refused_naming_the_supported_ones(
    tiny_llama_dir: Path, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    base = _copy_with_config(
        tiny_llama_dir, tmp_path / "phi", "config.json", architectures=["PhiForCausalLM"]
    )
    out = tmp_path / "out" / "adapter.gguf"
    with pytest.raises(UnsupportedArchitecture) as caught:
        export_gguf(lora_adapter_dir, out, base=base)
    message = caught.value.message
    assert "PhiForCausalLM" in message
    for name in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"):
        assert name in message
    assert not (tmp_path / "out").exists()


def test_non_lora_adapter_is_refused_and_nothing_is_written(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    from peft import IA3Config, get_peft_model

    model = get_peft_model(
        load_tiny_llama(tiny_llama_dir),
        IA3Config(target_modules=["k_proj", "down_proj"], feedforward_modules=["down_proj"]),
    )
    model.save_pretrained(str(tmp_path / "ia3"))
    out = tmp_path / "ia3.gguf"
    with pytest.raises(UnsupportedAdapter, match="IA3"):
        export_gguf(tmp_path / "ia3", out, base=tiny_llama_dir)
    assert not out.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ia3"]


def test_dora_adapter_is_refused(
    tiny_llama_dir: Path, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    dora = _copy_with_config(
        lora_adapter_dir, tmp_path / "dora", "adapter_config.json", use_dora=True
    )
    with pytest.raises(UnsupportedAdapter, match="DoRA"):
        export_gguf(dora, tmp_path / "dora.gguf", base=tiny_llama_dir)
    assert not (tmp_path / "dora.gguf").exists()


def test_adapter_without_a_reachable_base_config_asks_for_one(
    lora_adapter_dir: Path, tmp_path: Path
) -> None:
    remote = _copy_with_config(
        lora_adapter_dir,
        tmp_path / "remote",
        "adapter_config.json",
        base_model_name_or_path="meta-llama/Llama-3.2-1B",
    )
    with pytest.raises(InvalidBaseModel, match="base model"):
        export_gguf(remote, tmp_path / "remote.gguf")
    assert not (tmp_path / "remote.gguf").exists()


def test_existing_output_is_kept_unless_overwrite(
    tiny_llama_dir: Path, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "adapter.gguf"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExists):
        export_gguf(lora_adapter_dir, out, base=tiny_llama_dir)
    assert out.read_bytes() == b"keep me"
    export_gguf(lora_adapter_dir, out, base=tiny_llama_dir, overwrite=True)
    assert metadata(out)["adapter.type"] == "lora"
