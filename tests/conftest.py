from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import build_lora_adapter, build_tiny_llama

pytest_plugins = ["tests.servers"]


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama saved as a Hugging Face model directory (float32)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "model")


@pytest.fixture(scope="session")
def lora_adapter_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """A real PEFT LoRA adapter (r=8, alpha=16, q_proj+v_proj) on the tiny Llama."""
    return build_lora_adapter(tiny_llama_dir, tmp_path_factory.mktemp("lora") / "adapter")
