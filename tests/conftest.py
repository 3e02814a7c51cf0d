"""Fixtures every test may request: the tiny Llama and adapters on it here; servers, backend
settings, the app and a `lorry serve` process in the tests.support plugins."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.compositions import SKILL_SPECS
from tests.support.factories import build_lora_adapter, build_tiny_llama
from tests.support.files import directory_files
from tests.support.tokens import bearer, make_token

pytest_plugins = [
    "tests.support.postgres",
    "tests.support.s3",
    "tests.support.backends",
    "tests.support.cli",
    "tests.serving.vllm_server",  # session fixtures: one vLLM for every module that serves
]


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama saved as a Hugging Face model directory (float32)."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "model")


@pytest.fixture(scope="session")
def lora_adapter_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """A real PEFT LoRA adapter (r=8, alpha=16, q_proj+v_proj) on the tiny Llama."""
    return build_lora_adapter(tiny_llama_dir, tmp_path_factory.mktemp("lora") / "adapter")


@pytest.fixture(scope="session")
def adapter_files(lora_adapter_dir: Path) -> dict[str, bytes]:
    """The files of the real PEFT adapter, by relative path."""
    return directory_files(lora_adapter_dir)


@pytest.fixture(scope="session")
def skill_adapters(
    tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path
) -> dict[str, dict[str, bytes]]:
    """Three real PEFT adapters on the tiny Llama: a skill, a tone and a toxic one."""
    root = tmp_path_factory.mktemp("skills")
    return {
        name: directory_files(build_lora_adapter(tiny_llama_dir, root / name, r=r, seed=seed))
        for name, (r, seed) in SKILL_SPECS.items()
    }


@pytest.fixture
def token_factory(sqlite_client: TestClient) -> Callable[..., dict[str, str]]:
    """Headers of a new token on the SQLite registry: ``token_factory(["write"], ["acme/*"])``."""

    def factory(
        scopes: list[str], namespaces: list[str] | None = None, principal: str = "tester"
    ) -> dict[str, str]:
        return bearer(make_token(sqlite_client, scopes, namespaces, principal))

    return factory
