"""Hugging Face models exported to GGUF models with their tokenizer, read back."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from composer import InvalidBaseModel
from composer.export import (
    UnsupportedArchitecture,
    UnsupportedModel,
    UnsupportedTokenizer,
    export_gguf,
)
from tests.export.builders import MODEL_VOCAB
from tests.export.reading import metadata, permute_like_llama_cpp, tensors
from tests.support.factories import TINY_LLAMA

LLAMA_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "lm_head.weight": "output.weight",
    "model.norm.weight": "output_norm.weight",
}
LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf_name: str) -> str:
    if hf_name in LLAMA_NAMES:
        return LLAMA_NAMES[hf_name]
    _, _, layer, rest = hf_name.split(".", 3)
    if rest.endswith(".bias"):
        return f"blk.{layer}.{LAYER_NAMES[rest.removesuffix('.bias') + '.weight']}".replace(
            ".weight", ".bias"
        )
    return f"blk.{layer}.{LAYER_NAMES[rest]}"


def in_gguf_layout(hf_name: str, values: np.ndarray, permute: bool) -> np.ndarray:
    if permute and ".q_proj." in hf_name:
        return permute_like_llama_cpp(values, TINY_LLAMA["num_attention_heads"])
    if permute and ".k_proj." in hf_name:
        return permute_like_llama_cpp(values, TINY_LLAMA["num_key_value_heads"])
    return values


@pytest.mark.parametrize(
    ("outtype", "file_type", "matrix_type", "tolerance"),
    [("f16", 1, "F16", 1e-3), ("bf16", 32, "BF16", 8e-3), ("q8_0", 7, "Q8_0", 1e-2)],
)
def test_llama_exports_with_hyperparameters_tensors_and_tokenizer(
    llama_with_tokenizer: Path,
    tmp_path: Path,
    outtype: str,
    file_type: int,
    matrix_type: str,
    tolerance: float,
) -> None:
    out = tmp_path / "model.gguf"
    result = export_gguf(llama_with_tokenizer, out, outtype=outtype, name="acme/tiny@1")
    assert (result.kind, result.architecture, result.tokenizer_pre) == (
        "model",
        "llama",
        "llama-bpe",
    )

    meta = metadata(out)
    expected_meta = {
        "general.architecture": "llama",
        "general.type": "model",
        "general.name": "acme/tiny@1",
        "general.file_type": file_type,
        "general.quantization_version": 2,
        "llama.vocab_size": MODEL_VOCAB,
        "llama.context_length": 128,
        "llama.embedding_length": 64,
        "llama.feed_forward_length": 128,
        "llama.block_count": 2,
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2,
        "llama.attention.key_length": 16,
        "llama.attention.value_length": 16,
        "llama.rope.dimension_count": 16,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "llama-bpe",
        "tokenizer.ggml.bos_token_id": 0,
        "tokenizer.ggml.eos_token_id": 1,
        "tokenizer.ggml.add_bos_token": True,
    }
    assert {key: meta[key] for key in expected_meta} == expected_meta
    assert meta["llama.rope.freq_base"] == pytest.approx(10000.0)
    assert meta["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-6)

    source = load_file(str(llama_with_tokenizer / "model.safetensors"))
    read = tensors(out)
    assert set(read) == {gguf_name(name) for name in source}
    for hf_name, values in source.items():
        kind, written = read[gguf_name(hf_name)]
        assert kind == ("F32" if values.ndim == 1 else matrix_type), hf_name
        want = in_gguf_layout(hf_name, values, permute=True)
        assert written.shape == want.shape
        error = np.abs(written - want).max() / np.abs(want).max()
        assert error < tolerance, (hf_name, error)


def test_tokenizer_vocab_merges_and_types_match_tokenizer_json(
    llama_with_tokenizer: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model.gguf"
    export_gguf(llama_with_tokenizer, out)
    tokenizer = json.loads((llama_with_tokenizer / "tokenizer.json").read_text())
    meta = metadata(out)

    tokens, types = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]
    assert len(tokens) == len(types) == MODEL_VOCAB
    for token, token_id in tokenizer["model"]["vocab"].items():
        assert tokens[token_id] == token
    assert tokens[0] == "<|begin_of_text|>" and types[0] == 3  # CONTROL
    vocab_end = len(tokenizer["model"]["vocab"])
    assert types[vocab_end - 1] == 1  # NORMAL
    assert tokens[vocab_end:] == [f"[PAD{i}]" for i in range(vocab_end, MODEL_VOCAB)]
    assert set(types[vocab_end:]) == {5}  # UNUSED
    assert meta["tokenizer.ggml.merges"] == [
        " ".join(pair) for pair in tokenizer["model"]["merges"]
    ]


def test_qwen2_exports_biases_without_permuting(qwen2_with_tokenizer: Path, tmp_path: Path) -> None:
    out = tmp_path / "qwen2.gguf"
    result = export_gguf(qwen2_with_tokenizer, out, outtype="f16")
    meta = metadata(out)
    assert (result.architecture, meta["tokenizer.ggml.pre"]) == ("qwen2", "qwen2")
    assert meta["qwen2.block_count"] == 2

    source = load_file(str(qwen2_with_tokenizer / "model.safetensors"))
    read = tensors(out)
    assert set(read) == {gguf_name(name) for name in source}
    assert "blk.0.attn_q.bias" in read
    for hf_name, values in source.items():
        np.testing.assert_allclose(read[gguf_name(hf_name)][1], values, rtol=1e-3, atol=1e-4)


def _variant(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_model_without_tokenizer_is_refused_and_nothing_is_written(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "model.gguf"
    with pytest.raises(UnsupportedTokenizer, match="no tokenizer.json"):
        export_gguf(tiny_llama_dir, out)
    assert not (tmp_path / "out").exists()


def test_byte_level_bpe_with_byte_fallback_is_refused(
    llama_with_tokenizer: Path, tmp_path: Path
) -> None:
    # A byte-level (Llama 3) vocabulary with byte_fallback switched on is neither llama.cpp's
    # gpt2 tokenizer nor a SentencePiece conversion (tests/export/test_sentencepiece_tokenizer.py).
    model = _variant(llama_with_tokenizer, tmp_path / "spm")
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    tokenizer["model"]["byte_fallback"] = True
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(UnsupportedTokenizer, match="byte-fallback"):
        export_gguf(model, tmp_path / "spm.gguf")
    assert not (tmp_path / "spm.gguf").exists()


@pytest.mark.parametrize("flag", ["lstrip", "rstrip", "single_word"])
def test_byte_level_added_tokens_matched_with_flags_llama_cpp_lacks_are_refused(
    llama_with_tokenizer: Path, tmp_path: Path, flag: str
) -> None:
    # transformers strips spaces around such a token (or matches it only as a whole word);
    # llama.cpp keeps them for byte-level BPE: the same text would tokenize differently
    model = _variant(llama_with_tokenizer, tmp_path / flag)
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    tokenizer["added_tokens"][-1][flag] = True
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    content = tokenizer["added_tokens"][-1]["content"]
    with pytest.raises(UnsupportedTokenizer, match=f"{re.escape(repr(content))} has {flag}"):
        export_gguf(model, tmp_path / f"{flag}.gguf")
    assert not (tmp_path / f"{flag}.gguf").exists()


def test_unknown_pre_tokenizer_regex_is_refused(llama_with_tokenizer: Path, tmp_path: Path) -> None:
    model = _variant(llama_with_tokenizer, tmp_path / "odd")
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    tokenizer["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\s+|\S+"
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(UnsupportedTokenizer, match="not one llama.cpp knows"):
        export_gguf(model, tmp_path / "odd.gguf")


def test_llama3_regex_without_ignore_merges_is_refused(
    llama_with_tokenizer: Path, tmp_path: Path
) -> None:
    model = _variant(llama_with_tokenizer, tmp_path / "merges")
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    tokenizer["model"]["ignore_merges"] = False
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(UnsupportedTokenizer, match="ignore_merges"):
        export_gguf(model, tmp_path / "merges.gguf")


def test_unsupported_model_architecture_is_refused(
    llama_with_tokenizer: Path, tmp_path: Path
) -> None:
    model = _variant(llama_with_tokenizer, tmp_path / "gemma3")
    _edit_json(model / "config.json", architectures=["Gemma3ForCausalLM"])
    with pytest.raises(UnsupportedArchitecture, match="Gemma3ForCausalLM.*LlamaForCausalLM"):
        export_gguf(model, tmp_path / "gemma3.gguf")
    assert not (tmp_path / "gemma3.gguf").exists()


def test_unsupported_rope_scaling_is_refused(llama_with_tokenizer: Path, tmp_path: Path) -> None:
    model = _variant(llama_with_tokenizer, tmp_path / "yarn")
    _edit_json(
        model / "config.json",
        rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0},
    )
    with pytest.raises(UnsupportedModel, match="yarn"):
        export_gguf(model, tmp_path / "yarn.gguf")


def test_llama3_rope_scaling_writes_rope_freqs(llama_with_tokenizer: Path, tmp_path: Path) -> None:
    model = _variant(llama_with_tokenizer, tmp_path / "llama31")
    scaling = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
        "rope_theta": 500000.0,
    }
    _edit_json(model / "config.json", rope_parameters=scaling)
    out = tmp_path / "llama31.gguf"
    export_gguf(model, out)
    kind, freqs = tensors(out)["rope_freqs.weight"]
    assert kind == "F32" and freqs.shape == (8,)
    # short wavelengths keep their frequency, long ones are divided by the factor
    assert freqs[0] == 1.0 and freqs[-1] == 8.0
    assert np.all(np.diff(freqs) >= 0)
    assert metadata(out)["llama.rope.freq_base"] == pytest.approx(500000.0)


def test_pickled_weights_are_refused(llama_with_tokenizer: Path, tmp_path: Path) -> None:
    model = _variant(llama_with_tokenizer, tmp_path / "pickled")
    (model / "model.safetensors").rename(model / "pytorch_model.bin")
    with pytest.raises(InvalidBaseModel, match="pickled"):
        export_gguf(model, tmp_path / "pickled.gguf")
    assert not (tmp_path / "pickled.gguf").exists()
