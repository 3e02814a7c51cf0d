"""A real vLLM serves Lorry's adapters: the tokens it generates are the ones transformers +
PEFT generate for the same version, through ``HF_ENDPOINT`` and through Lorry's resolver."""

from __future__ import annotations

import pytest

from tests.serving.vllm_server import (
    ADAPTER_REPO,
    LORA_NAME,
    OTHER_BASE_REPO,
    OTHER_REPO,
    ServingModels,
    ServingRegistry,
    VllmServer,
    peft_greedy,
)

MAX_TOKENS = 8
MARGIN = 1e-3
"""The smallest logit gap the reference may have at a greedy step: float32 on two
implementations differs by ~1e-5, so below this equality would be luck either way."""


@pytest.fixture(scope="module")
def reference(serving_models: ServingModels) -> dict[str, list[int]]:
    """Greedy tokens of transformers + PEFT for the base model and each adapter version."""
    tokens = {}
    for label, adapter in [("base", None), *serving_models.adapters.items()]:
        base = serving_models.other_base if label == "other" else serving_models.base
        tokens[label], margin = peft_greedy(base, adapter, serving_models.prompt_ids, MAX_TOKENS)
        assert margin > MARGIN, f"{label}: greedy decoding is within {margin} of a tie"
    # The adapters change what the model says, and v2 says something else than v1.
    assert tokens["sql-v1"] != tokens["base"]
    assert tokens["sql-v2"] not in (tokens["base"], tokens["sql-v1"])
    return tokens


def test_served_tokens_equal_peft_and_follow_production_when_reloaded(
    vllm_server: VllmServer,
    serving_registry: ServingRegistry,
    serving_models: ServingModels,
    reference: dict[str, list[int]],
) -> None:
    prompt = serving_models.prompt_ids
    assert (
        vllm_server.completion_ids(str(serving_models.base), prompt, MAX_TOKENS)
        == (reference["base"])
    )
    # `--lora-modules sql=acme/sql`: vLLM downloaded `main`, which follows production (v1).
    assert vllm_server.completion_ids(LORA_NAME, prompt, MAX_TOKENS) == reference["sql-v1"]

    serving_registry.move_alias(ADAPTER_REPO, "production", 2)
    reload = vllm_server.http.post(
        "/v1/load_lora_adapter",
        json={"lora_name": LORA_NAME, "lora_path": ADAPTER_REPO, "load_inplace": True},
    )
    assert reload.status_code == 200, reload.text
    assert vllm_server.completion_ids(LORA_NAME, prompt, MAX_TOKENS) == reference["sql-v2"]


def test_resolver_serves_exact_versions_by_reference(
    vllm_server: VllmServer,
    serving_registry: ServingRegistry,
    serving_models: ServingModels,
    reference: dict[str, list[int]],
) -> None:
    prompt = serving_models.prompt_ids
    v1, v2 = serving_registry.versions["sql-v1"], serving_registry.versions["sql-v2"]
    production = serving_registry.http.get(f"/api/v1/repos/{ADAPTER_REPO}/aliases/production")
    assert production.status_code == 200, production.text
    at_production = {1: "sql-v1", 2: "sql-v2"}[production.json()["version"]]

    for name, expected in [
        (f"{ADAPTER_REPO}@1", "sql-v1"),
        (f"{ADAPTER_REPO}@production", at_production),
        (f"{ADAPTER_REPO}@{v2['digest']}", "sql-v2"),
    ]:
        assert vllm_server.completion_ids(name, prompt, MAX_TOKENS) == reference[expected], name
    assert v1["digest"] != v2["digest"]

    models = {m["id"]: m for m in vllm_server.http.get("/v1/models").json()["data"]}
    assert f"{ADAPTER_REPO}@1" in models and f"{ADAPTER_REPO}@production" in models


def test_resolver_refuses_an_adapter_of_another_base_model_and_unknown_references(
    vllm_server: VllmServer, serving_models: ServingModels
) -> None:
    prompt = serving_models.prompt_ids
    refused = vllm_server.completion(f"{OTHER_REPO}@1", prompt, MAX_TOKENS)
    assert refused.status_code == 400, refused.text
    message = refused.json()["error"]["message"]
    assert OTHER_BASE_REPO in message and "LORRY_BASE_MODEL" in message, message

    for name in (f"{ADAPTER_REPO}@9", "acme/nothing@1", f"{ADAPTER_REPO}@staging"):
        missing = vllm_server.completion(name, prompt, MAX_TOKENS)
        assert missing.status_code == 404, (name, missing.text)
    # A refused or unknown reference is not loaded: only the ones that resolved are listed.
    listed = {m["id"] for m in vllm_server.http.get("/v1/models").json()["data"]}
    assert f"{OTHER_REPO}@1" not in listed and "acme/nothing@1" not in listed
