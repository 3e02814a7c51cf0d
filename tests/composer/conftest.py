from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.factories import build_lora_adapter


@pytest.fixture(scope="session")
def adapter_a(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """r=8, alpha=16 on q_proj and v_proj."""
    out = tmp_path_factory.mktemp("composer") / "task"
    return build_lora_adapter(tiny_llama_dir, out, r=8, lora_alpha=16, seed=11)


@pytest.fixture(scope="session")
def adapter_b(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """rsLoRA r=4, alpha=8 on q_proj, k_proj and up_proj."""
    out = tmp_path_factory.mktemp("composer") / "tone"
    return build_lora_adapter(
        tiny_llama_dir,
        out,
        r=4,
        lora_alpha=8,
        use_rslora=True,
        target_modules=("q_proj", "k_proj", "up_proj"),
        seed=12,
    )


@pytest.fixture(scope="session")
def adapter_c(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """r=6, alpha=12 on v_proj and down_proj, rank 2 on layer 1's v_proj (rank_pattern)."""
    out = tmp_path_factory.mktemp("composer") / "unwanted"
    return build_lora_adapter(
        tiny_llama_dir,
        out,
        r=6,
        lora_alpha=12,
        target_modules=("v_proj", "down_proj"),
        rank_pattern={"layers.1.self_attn.v_proj": 2},
        seed=13,
    )


@pytest.fixture(scope="session")
def sharded_llama_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """The tiny Llama re-saved in several shards with an index, plus tokenizer files."""
    from tests.support.factories import load_tiny_llama

    out = tmp_path_factory.mktemp("sharded") / "model"
    load_tiny_llama(tiny_llama_dir).save_pretrained(out, max_shard_size="100KB")
    (out / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "BPE"}}\n')
    (out / "tokenizer_config.json").write_text('{"model_max_length": 128}\n')
    return out
