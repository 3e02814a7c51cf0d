"""Adapters of the upload validation tests (adapter validation and model cards)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.factories import build_lora_adapter, load_tiny_llama


@pytest.fixture(scope="session")
def patterned_adapter_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """rsLoRA, three targets, and a rank_pattern with a full-path key and a suffix key."""
    return build_lora_adapter(
        tiny_llama_dir,
        tmp_path_factory.mktemp("patterned") / "adapter",
        r=8,
        lora_alpha=32,
        target_modules=("q_proj", "v_proj", "down_proj"),
        use_rslora=True,
        rank_pattern={"layers.1.self_attn.q_proj": 4, "down_proj": 2},
    )


@pytest.fixture(scope="session")
def dora_adapter_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    from peft import LoraConfig, get_peft_model

    out = tmp_path_factory.mktemp("dora") / "adapter"
    model = get_peft_model(
        load_tiny_llama(tiny_llama_dir), LoraConfig(r=4, target_modules=["v_proj"], use_dora=True)
    )
    model.save_pretrained(str(out))
    return out
