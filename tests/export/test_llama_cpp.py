"""llama.cpp itself (through llama-cpp-python) loads what the export writes.

The tiny Llama exported as a GGUF model plus the exported adapter must give the
same tokens and greedy continuation as transformers + PEFT. llama.cpp is the one
.ci/llama_cpp.sh builds (tests/llama_cpp.py): skipped with the reason printed where
it is missing, required in CI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from composer.export import export_gguf
from tests.support.factories import build_lora_adapter
from tests.support.llama_cpp import load_llama_cpp

PROMPT = "The quick brown fox jumps"
NEW_TOKENS = 8


def _llama_cpp_greedy(
    model: Path, adapter: Path | None, ids: list[int]
) -> tuple[list[int], np.ndarray]:
    llama_cpp = load_llama_cpp()
    options: dict[str, Any] = {"n_ctx": 128, "n_threads": 1, "verbose": False, "seed": 0}
    if adapter is not None:
        options["lora_path"] = str(adapter)
    llm = llama_cpp.Llama(model_path=str(model), logits_all=True, **options)
    llm.eval(ids)
    first_logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    generated: list[int] = []
    for _ in range(NEW_TOKENS):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        generated.append(token)
        llm.eval([token])
    llm.close()
    return generated, first_logits


def _transformers_greedy(
    model_dir: Path, adapter: Path, ids: list[int]
) -> tuple[list[int], np.ndarray]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    with torch.no_grad():
        first = model(torch.tensor([ids])).logits[0, -1].numpy()
        output = model.generate(
            torch.tensor([ids]),
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=1,
        )
    return output[0, len(ids) :].tolist(), first


@pytest.mark.parametrize("model_fixture", ["llama_with_tokenizer", "qwen2_with_tokenizer"])
def test_llama_cpp_with_the_exported_adapter_matches_transformers_and_peft(
    model_fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    llama_cpp = load_llama_cpp()
    model_dir: Path = request.getfixturevalue(model_fixture)
    adapter_dir = build_lora_adapter(
        model_dir,
        tmp_path / "adapter",
        r=8,
        lora_alpha=32,
        target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"),
        seed=3,
    )
    model_gguf, adapter_gguf = tmp_path / "model.gguf", tmp_path / "adapter.gguf"
    export_gguf(model_dir, model_gguf, outtype="f32")
    export_gguf(adapter_dir, adapter_gguf, base=model_dir, outtype="f32")

    ids = AutoTokenizer.from_pretrained(model_dir)(PROMPT)["input_ids"]
    probe = llama_cpp.Llama(model_path=str(model_gguf), n_ctx=128, verbose=False)
    assert probe.tokenize(PROMPT.encode(), add_bos=True, special=True) == ids
    probe.close()

    expected, expected_logits = _transformers_greedy(model_dir, adapter_dir, ids)
    got, logits = _llama_cpp_greedy(model_gguf, adapter_gguf, ids)
    _, base_logits = _llama_cpp_greedy(model_gguf, None, ids)
    worst = np.abs(logits - expected_logits).max()
    print(
        f"\n{model_fixture}: prompt ids {ids}\ntransformers+PEFT {expected}\n"
        f"llama.cpp+LoRA    {got}\nmax |logit difference| {worst:.2e}"
    )

    assert got == expected
    np.testing.assert_allclose(logits, expected_logits, rtol=1e-3, atol=1e-3)
    # the adapter really is applied
    assert np.abs(base_logits - expected_logits).max() > 10 * np.abs(logits - expected_logits).max()
