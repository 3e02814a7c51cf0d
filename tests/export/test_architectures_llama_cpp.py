"""llama.cpp itself runs the Phi-3, Gemma and Gemma 2 exports as transformers + PEFT do.

Base model + adapter GGUF, and the adapter merged into the base (f16, and Q4_K_M
byte-identical to what llama-quantize makes of the merged model): the same prompt
tokens, the same greedy continuation, close logits. llama.cpp is the one
.ci/llama_cpp.sh builds (tests/support/llama_cpp.py): skipped with the reason where it
is missing, required in CI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, LlamaFileType

from composer.export import export_gguf
from tests.export.architectures import (
    llama_cpp_greedy,
    peft_model,
    train_adapter,
    transformers_greedy,
)
from tests.export.builders import build_sentencepiece_model
from tests.support.llama_cpp import llama_quantize, load_llama_cpp

PROMPT = "Lorry stores LoRA adapters"
# float32 logits agree to 1e-3 where llama.cpp's activation is exact (SiLU); ggml's CPU GELU
# (Gemma's) reads a float16 table (GGML_GELU_FP16 in ggml-cpu/vec.h): measured 2.4e-3 here
TOLERANCE = {"phi3": 1e-3, "gemma": 5e-3, "gemma2": 5e-3}
# wide enough for 256-value k-quant blocks (Q4_K, Q6_K) in every projection
WIDE = {"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4}


def _prompt_ids(model_dir: Path, model_gguf: Path) -> list[int]:
    from transformers import AutoTokenizer

    ids: list[int] = AutoTokenizer.from_pretrained(model_dir)(PROMPT)["input_ids"]
    probe = load_llama_cpp().Llama(model_path=str(model_gguf), n_ctx=64, verbose=False)
    assert probe.tokenize(PROMPT.encode(), add_bos=True, special=True) == ids
    probe.close()
    return ids


def test_llama_cpp_with_the_exported_adapter_matches_transformers_and_peft(
    spm_architecture: Path, tmp_path: Path
) -> None:
    load_llama_cpp()
    adapter = train_adapter(spm_architecture, tmp_path / "adapter")
    model_gguf = export_gguf(spm_architecture, tmp_path / "model.gguf", outtype="f32").out
    adapter_gguf = export_gguf(adapter, tmp_path / "adapter.gguf", base=spm_architecture).out
    ids = _prompt_ids(spm_architecture, model_gguf)

    expected, expected_logits = transformers_greedy(peft_model(spm_architecture, adapter), ids)
    got, logits = llama_cpp_greedy(model_gguf, ids, adapter_gguf)
    _, base_logits = llama_cpp_greedy(model_gguf, ids)
    error = np.abs(logits - expected_logits).max()
    print(f"\n{spm_architecture.name}: PEFT {expected}, llama.cpp {got}, max |dlogit| {error:.1e}")
    assert got == expected
    assert error < TOLERANCE[spm_architecture.name]
    assert np.abs(base_logits - expected_logits).max() > 10 * error  # the adapter counts


def test_llama_cpp_runs_the_merged_f16_model_as_transformers_and_peft(
    spm_architecture: Path, tmp_path: Path
) -> None:
    load_llama_cpp()
    adapter = train_adapter(spm_architecture, tmp_path / "adapter", seed=4)
    merged = export_gguf(
        adapter, tmp_path / "merged.gguf", merge_into=spm_architecture, outtype="f16"
    ).out
    ids = _prompt_ids(spm_architecture, merged)
    expected, expected_logits = transformers_greedy(peft_model(spm_architecture, adapter), ids)
    got, logits = llama_cpp_greedy(merged, ids)
    base = export_gguf(spm_architecture, tmp_path / "base.gguf", outtype="f16").out
    _, base_logits = llama_cpp_greedy(base, ids)
    error = np.abs(logits - expected_logits).max()
    print(f"\n{spm_architecture.name} f16 merged: max |logit - transformers+PEFT| {error:.1e}")
    assert got == expected
    assert error < 2 * TOLERANCE[spm_architecture.name] + 5e-3  # + float16 weights
    assert np.abs(base_logits - expected_logits).max() > 10 * error


@pytest.mark.parametrize("architecture", ["phi3", "gemma", "gemma2"])
def test_merged_q4_k_m_equals_llama_quantize_of_the_merged_model(
    architecture: str, tmp_path: Path
) -> None:
    load_llama_cpp()
    model_dir = build_sentencepiece_model(tmp_path / "model", architecture, seed=7, **WIDE)
    adapter = train_adapter(model_dir, tmp_path / "adapter")
    merged_f32 = export_gguf(
        adapter, tmp_path / "merged-f32.gguf", merge_into=model_dir, outtype="f32"
    ).out
    reference = tmp_path / "llama-quantize.gguf"
    llama_quantize(merged_f32, reference, LlamaFileType.MOSTLY_Q4_K_M)
    ours = export_gguf(adapter, tmp_path / "q4.gguf", merge_into=model_dir, outtype="q4_k_m").out

    def by_name(path: Path) -> dict[str, tuple[str, bytes]]:
        return {t.name: (t.tensor_type.name, bytes(t.data)) for t in GGUFReader(path).tensors}

    expected, got = by_name(reference), by_name(ours)
    assert got.keys() == expected.keys()
    for name, (kind, data) in expected.items():
        assert got[name][0] == kind, f"{name}: Lorry {got[name][0]}, llama-quantize {kind}"
        assert got[name][1] == data, f"{name} ({kind}): bytes differ from llama-quantize's"
    kinds = {kind for kind, _ in got.values()}
    assert {"Q4_K", "Q6_K"} <= kinds  # real k-quants, not only fallbacks
    tokens, logits = llama_cpp_greedy(ours, [1, 40, 41, 42, 43])
    assert len(tokens) == 8 and np.isfinite(logits).all()


def test_llama_cpp_runs_a_phi3_with_partial_rotary_as_transformers(tmp_path: Path) -> None:
    """Phi-4-mini's kind of Phi3ForCausalLM: rope on half of each head (and LongRoPE)."""
    from transformers import AutoModelForCausalLM

    load_llama_cpp()
    model_dir = build_sentencepiece_model(tmp_path / "model", "phi3", seed=9, partial_rotary=0.5)
    model_gguf = export_gguf(model_dir, tmp_path / "model.gguf", outtype="f32").out
    assert GGUFReader(model_gguf).fields["phi3.rope.dimension_count"].contents() == 8
    ids = _prompt_ids(model_dir, model_gguf)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    expected, expected_logits = transformers_greedy(model, ids)
    got, logits = llama_cpp_greedy(model_gguf, ids)
    assert got == expected
    assert np.abs(logits - expected_logits).max() < TOLERANCE["phi3"]
