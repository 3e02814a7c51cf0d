from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.cli.conftest import registry_url  # noqa: F401 (a real `lorry serve` for CLI tests)
from tests.compose_service.conftest import (  # noqa: F401 (an app that runs jobs, both backends)
    client,
    settings,
    sqlite_client,
)
from tests.export.builders import build_tiny_model
from tests.factories import ALL_PROJECTIONS, build_lora_adapter


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


def permute_like_llama_cpp(rows: npt.NDArray[np.float32], n_head: int) -> npt.NDArray[np.float32]:
    """convert_hf_to_gguf.py's LlamaModel.permute, written out independently."""
    shape = rows.shape
    return (
        rows.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
    )
