"""Merge, then quantize: ``export_gguf(adapter, out, merge_into=base, outtype=...)``.

The merged weights are the ones ``compose`` writes for a linear merge (float32), and
llama.cpp running the merged file matches transformers + PEFT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from composer import compose
from composer.errors import ComposerError
from composer.export import export_gguf
from tests.export.reading import tensors
from tests.support.factories import build_lora_adapter
from tests.support.llama_cpp import load_llama_cpp

PROMPT_IDS = [0, 17, 40, 99, 120, 201, 7, 55]


@pytest.fixture(scope="module")
def adapter(llama_with_tokenizer: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lora_adapter(
        llama_with_tokenizer,
        tmp_path_factory.mktemp("merge-lora") / "adapter",
        r=8,
        lora_alpha=32,
        target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"),
        seed=4,
    )


def test_merged_export_holds_the_weights_compose_merges(
    llama_with_tokenizer: Path, adapter: Path, tmp_path: Path
) -> None:
    composed = tmp_path / "composed"
    recipe = {
        "method": "linear",
        "inputs": [{"adapter": str(adapter), "weight": 1.0}],
        "output": {"type": "merged", "base": str(llama_with_tokenizer), "dtype": "float32"},
    }
    compose(recipe, composed)
    expected = tensors(export_gguf(composed, tmp_path / "composed.gguf", outtype="f32").out)
    result = export_gguf(
        adapter, tmp_path / "merged.gguf", merge_into=llama_with_tokenizer, outtype="f32"
    )
    got = tensors(result.out)
    assert result.kind == "model" and result.merged_into == llama_with_tokenizer
    assert got.keys() == expected.keys()
    for name, (kind, values) in expected.items():
        assert got[name][0] == kind
        np.testing.assert_array_equal(got[name][1], values, err_msg=name)
    base = tensors(export_gguf(llama_with_tokenizer, tmp_path / "base.gguf", outtype="f32").out)
    changed = {name for name in got if not np.array_equal(got[name][1], base[name][1])}
    assert changed == {
        f"blk.{layer}.{part}.weight"
        for layer in range(2)
        for part in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down")
    }


def test_merge_into_refuses_a_base_the_adapter_does_not_fit(
    adapter: Path, wide_base: Path, tmp_path: Path
) -> None:
    with pytest.raises(ComposerError, match="the base weight is"):
        export_gguf(adapter, tmp_path / "m.gguf", merge_into=wide_base, outtype="q4_k_m")
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def wide_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.export.builders import build_tiny_model

    out = tmp_path_factory.mktemp("merge-wide") / "model"
    return build_tiny_model(out, hidden_size=128, intermediate_size=256, num_hidden_layers=2)


def _transformers_merged(model_dir: Path, adapter_dir: Path) -> tuple[list[int], np.ndarray]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload().eval()
    with torch.no_grad():
        logits = model(torch.tensor([PROMPT_IDS])).logits[0, -1].numpy()
        output = model.generate(
            torch.tensor([PROMPT_IDS]), max_new_tokens=8, min_new_tokens=8, do_sample=False
        )
    return output[0, len(PROMPT_IDS) :].tolist(), logits


def _llama_cpp(model: Path) -> tuple[list[int], np.ndarray]:
    llama_cpp = load_llama_cpp()
    llm = llama_cpp.Llama(
        model_path=str(model), n_ctx=64, n_threads=1, verbose=False, logits_all=True
    )
    llm.eval(PROMPT_IDS)
    first = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    generated: list[int] = []
    for _ in range(8):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        generated.append(token)
        llm.eval([token])
    llm.close()
    return generated, first


@pytest.mark.parametrize(("outtype", "tolerance"), [("f16", 5e-3), ("q8_0", 5e-2)])
def test_llama_cpp_runs_the_merged_model_as_transformers_and_peft(
    outtype: str, tolerance: float, llama_with_tokenizer: Path, adapter: Path, tmp_path: Path
) -> None:
    merged = export_gguf(
        adapter, tmp_path / "merged.gguf", merge_into=llama_with_tokenizer, outtype=outtype
    )
    expected_tokens, expected_logits = _transformers_merged(llama_with_tokenizer, adapter)
    tokens, logits = _llama_cpp(merged.out)
    _, base_logits = _llama_cpp(export_gguf(llama_with_tokenizer, tmp_path / "b.gguf").out)
    error = np.abs(logits - expected_logits).max()
    print(f"\n{outtype}: max |logit - transformers+PEFT| {error:.2e}")
    assert tokens == expected_tokens
    assert error < tolerance
    # the adapter really is in the merged file
    assert np.abs(base_logits - expected_logits).max() > 10 * error
