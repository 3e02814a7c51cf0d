"""Phi-3 / Phi-3.5, Gemma and Gemma 2 exported as llama.cpp's converter writes them.

Tiny models built from their transformers configs (nothing downloaded): hyperparameter
keys, tensor names and layouts (Phi-3's fused ``attn_qkv`` and 2 x n_ff ``ffn_up``,
Gemma's norms stored as ``1 + weight``, no ``output.weight``), and PEFT adapters on the
fused modules checked on their B @ A products, as an adapter GGUF and merged.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from composer.export import UnsupportedArchitecture, UnsupportedModel, export_gguf
from tests.export.architectures import GGUF_NAMES, architecture_of, peft_deltas, train_adapter
from tests.export.reading import metadata, tensors

NORMS = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}
GEMMA2_NORMS = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
}


def _config(model_dir: Path) -> dict[str, object]:
    config: dict[str, object] = json.loads((model_dir / "config.json").read_text())
    return config


def _expected_tensors(model_dir: Path) -> dict[str, np.ndarray]:
    """gguf name -> values, from the safetensors by the converter's rules, written out."""
    architecture = architecture_of(model_dir)
    shift = 1.0 if architecture.startswith("gemma") else 0.0
    norms = GEMMA2_NORMS if architecture == "gemma2" else NORMS
    expected: dict[str, np.ndarray] = {}
    for key, value in load_file(model_dir / "model.safetensors").items():
        parts = key.split(".")
        if key == "lm_head.weight":
            if architecture == "phi3":
                expected["output.weight"] = value
            continue  # Gemma: llama.cpp computes the output from token_embd
        if key == "model.embed_tokens.weight":
            expected["token_embd.weight"] = value
        elif key == "model.norm.weight":
            expected["output_norm.weight"] = value + shift
        elif parts[3] in norms:
            expected[f"blk.{parts[2]}.{norms[parts[3]]}.weight"] = value + shift
        else:
            expected[f"blk.{parts[2]}.{GGUF_NAMES['.'.join(parts[3:5])]}.weight"] = value
    return expected


def test_export_writes_the_converters_tensors_and_keys(
    spm_architecture: Path, tmp_path: Path
) -> None:
    architecture = architecture_of(spm_architecture)
    config = _config(spm_architecture)
    out = export_gguf(spm_architecture, tmp_path / "model.gguf", outtype="f32").out
    got, fields = tensors(out), metadata(out)
    expected = _expected_tensors(spm_architecture)
    if architecture == "phi3":
        rope = config["rope_parameters"]
        assert isinstance(rope, dict)
        expected["rope_factors_long.weight"] = np.asarray(rope["long_factor"], np.float32)
        expected["rope_factors_short.weight"] = np.asarray(rope["short_factor"], np.float32)
    assert got.keys() == expected.keys()
    for name, values in expected.items():
        np.testing.assert_array_equal(got[name][1], values, err_msg=name)

    prefix = f"{architecture}."
    assert fields["general.architecture"] == architecture
    assert fields[prefix + "block_count"] == config["num_hidden_layers"]
    assert fields[prefix + "attention.head_count_kv"] == config["num_key_value_heads"]
    assert fields["tokenizer.ggml.model"] == "llama"
    if architecture == "phi3":
        # fused: q, k and v rows in one tensor, gate and up rows in one (2 x n_ff)
        hidden, inter = config["hidden_size"], config["intermediate_size"]
        assert isinstance(hidden, int) and isinstance(inter, int)
        assert got["blk.0.attn_qkv.weight"][1].shape == (hidden + 2 * hidden // 2, hidden)
        assert got["blk.0.ffn_up.weight"][1].shape == (2 * inter, hidden)
        assert fields[prefix + "rope.scaling.original_context_length"] == 4096
        assert fields[prefix + "attention.sliding_window"] == 0
        attn_factor = math.sqrt(1 + math.log(16384 / 4096) / math.log(4096))
        assert fields[prefix + "rope.scaling.attn_factor"] == pytest.approx(attn_factor)
        assert fields["tokenizer.ggml.add_space_prefix"] is True
    else:
        assert fields[prefix + "attention.key_length"] == config["head_dim"]
        assert fields["tokenizer.ggml.add_space_prefix"] is False
    if architecture == "gemma2":
        assert fields[prefix + "attn_logit_softcapping"] == 50.0
        assert fields[prefix + "final_logit_softcapping"] == 30.0
        assert fields[prefix + "attention.sliding_window"] == config["sliding_window"]


def test_adapter_gguf_products_equal_the_peft_deltas_on_fused_modules(
    spm_architecture: Path, tmp_path: Path
) -> None:
    adapter = train_adapter(spm_architecture, tmp_path / "adapter")
    out = export_gguf(adapter, tmp_path / "adapter.gguf", base=spm_architecture).out
    alpha = float(metadata(out)["adapter.lora.alpha"])
    read = tensors(out)
    expected = peft_deltas(spm_architecture, adapter)
    got = {
        name.removesuffix(".weight.lora_a"): (alpha / a.shape[0])
        * (read[name.replace("lora_a", "lora_b")][1] @ a)
        for name, (_, a) in read.items()
        if name.endswith(".lora_a")
    }
    assert got.keys() == expected.keys()
    if architecture_of(spm_architecture) == "phi3":
        assert {name.split(".", 2)[2] for name in got} == {
            "attn_qkv",
            "attn_output",
            "ffn_up",
            "ffn_down",
        }
    for name, delta in expected.items():
        np.testing.assert_allclose(got[name], delta, rtol=1e-5, atol=1e-6, err_msg=name)


def test_merged_export_adds_the_peft_delta_to_each_fused_tensor(
    spm_architecture: Path, tmp_path: Path
) -> None:
    adapter = train_adapter(spm_architecture, tmp_path / "adapter")
    base = tensors(export_gguf(spm_architecture, tmp_path / "base.gguf", outtype="f32").out)
    merged_out = export_gguf(
        adapter, tmp_path / "merged.gguf", merge_into=spm_architecture, outtype="f32"
    ).out
    merged = tensors(merged_out)
    deltas = peft_deltas(spm_architecture, adapter)
    assert merged.keys() == base.keys()
    for name, (_, values) in merged.items():
        delta = deltas.get(name.removesuffix(".weight"))
        if delta is None:  # norms (Gemma's still 1 + weight), embeddings: unchanged
            np.testing.assert_array_equal(values, base[name][1], err_msg=name)
        else:
            np.testing.assert_allclose(values - base[name][1], delta, atol=2e-6, err_msg=name)


def _variant(source: Path, target: Path, **changes: object) -> Path:
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config.update(changes)
    (target / "config.json").write_text(json.dumps(config))
    return target


@pytest.mark.parametrize(
    ("architecture", "changes", "match"),
    [
        ("gemma2", {"query_pre_attn_scalar": 64}, "scales queries by 1/sqrt"),
        ("gemma2", {"attn_logit_softcapping": None}, "always applies it"),
        ("gemma2", {"layer_types": ["full_attention", "full_attention"]}, "alternation"),
        ("gemma", {"tie_word_embeddings": False}, "from the token embedding"),
        (
            "gemma",
            {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}},
            "not supported by the GGUF export of gemma models",
        ),
        (
            "phi3",
            {
                "rope_parameters": {
                    "rope_type": "longrope",
                    "long_factor": [1.0] * 3,
                    "short_factor": [1.0] * 3,
                    "rope_theta": 1e4,
                }
            },
            "the rotated dimensions need 8",
        ),
    ],
)
def test_models_llama_cpp_would_run_differently_are_refused(
    architecture: str,
    changes: dict[str, object],
    match: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    source: Path = request.getfixturevalue(f"{architecture}_model")
    model = _variant(source, tmp_path / "variant", **changes)
    with pytest.raises(UnsupportedModel, match=match):
        export_gguf(model, tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists()


def test_other_architectures_are_refused_naming_the_supported_ones(
    gemma_model: Path, tmp_path: Path
) -> None:
    model = _variant(gemma_model, tmp_path / "m", architectures=["Gemma3ForCausalLM"])
    with pytest.raises(UnsupportedArchitecture) as refused:
        export_gguf(model, tmp_path / "m.gguf")
    for supported in ("Phi3ForCausalLM", "GemmaForCausalLM", "Gemma2ForCausalLM"):
        assert supported in str(refused.value)
