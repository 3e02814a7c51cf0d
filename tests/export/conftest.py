from __future__ import annotations

from pathlib import Path

import pytest

from tests.export.builders import build_tiny_model
from tests.support.factories import ALL_PROJECTIONS, build_lora_adapter


@pytest.fixture(scope="session")
def llama_with_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama (vocab 384) with a trained Llama-3-style byte-level BPE tokenizer."""
    return build_tiny_model(tmp_path_factory.mktemp("export-llama") / "model")


@pytest.fixture(scope="session")
def qwen2_with_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("export-qwen2") / "model", architecture="qwen2")


@pytest.fixture(scope="session")
def full_adapter_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """LoRA on every projection, q_proj at rank 4 (rank_pattern), the rest at 8."""
    return build_lora_adapter(
        tiny_llama_dir,
        tmp_path_factory.mktemp("export-lora") / "adapter",
        target_modules=ALL_PROJECTIONS,
        rank_pattern={"q_proj": 4},
    )


@pytest.fixture(scope="session")
def wide_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama whose rows (256, 512) fill whole k-quant super-blocks, with a tokenizer."""
    return build_tiny_model(
        tmp_path_factory.mktemp("export-wide-llama") / "model",
        hidden_size=256,
        intermediate_size=512,
        seed=3,
    )


@pytest.fixture(scope="session")
def wide_adapter(tmp_path_factory: pytest.TempPathFactory, wide_llama: Path) -> Path:
    """A LoRA adapter on every projection of ``wide_llama`` (non-zero A and B)."""
    return build_lora_adapter(
        wide_llama,
        tmp_path_factory.mktemp("export-wide-lora") / "adapter",
        r=8,
        lora_alpha=32,
        target_modules=ALL_PROJECTIONS,
        seed=5,
    )
