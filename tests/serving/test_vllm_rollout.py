"""A real vLLM follows an alias through a deployment target: after ``production`` moves to
v2, vLLM serves v2 with no manual call, with the tokens transformers + PEFT give for v2.

Uses the real-vLLM fixtures of ``tests/serving/vllm_server.py`` (skipped, with the reason,
where vLLM's venv is missing; CI builds it with ``.ci/vllm.sh``).
"""

from __future__ import annotations

import time

from tests.serving.vllm_server import (
    ADAPTER_REPO,
    LORA_NAME,
    ServingModels,
    ServingRegistry,
    VllmServer,
    peft_greedy,
)

API = "/api/v1"
MAX_TOKENS = 8
ROLLOUT_TIMEOUT_S = 120.0


def _target(registry: ServingRegistry, target_id: int) -> dict[str, object]:
    response = registry.http.get(f"{API}/repos/{ADAPTER_REPO}/deployments/{target_id}")
    assert response.status_code == 200, response.text
    found: dict[str, object] = response.json()
    return found


def _wait_until_served(registry: ServingRegistry, target_id: int, version: int) -> None:
    deadline = time.monotonic() + ROLLOUT_TIMEOUT_S
    while (shown := _target(registry, target_id))["served_version"] != version:
        assert time.monotonic() < deadline, f"vLLM did not confirm v{version}: {shown}"
        time.sleep(0.2)


def test_an_alias_move_makes_vllm_serve_the_new_version(
    vllm_server: VllmServer, serving_registry: ServingRegistry, serving_models: ServingModels
) -> None:
    prompt = serving_models.prompt_ids
    expected = {
        label: peft_greedy(serving_models.base, serving_models.adapters[label], prompt, MAX_TOKENS)[
            0
        ]
        for label in ("sql-v1", "sql-v2")
    }
    assert expected["sql-v1"] != expected["sql-v2"]
    # vLLM listens on loopback: the operator allows that network for deployment targets.
    serving_registry.server.settings.webhook_allow_cidrs = "127.0.0.0/8"
    serving_registry.move_alias(ADAPTER_REPO, "production", 1)
    body = {"alias": "production", "kind": "vllm", "url": vllm_server.url, "lora_name": LORA_NAME}
    response = serving_registry.http.post(f"{API}/repos/{ADAPTER_REPO}/deployments", json=body)
    assert response.status_code == 201, response.text
    target_id = response.json()["id"]
    _wait_until_served(serving_registry, target_id, 1)
    assert vllm_server.completion_ids(LORA_NAME, prompt, MAX_TOKENS) == expected["sql-v1"]

    serving_registry.move_alias(ADAPTER_REPO, "production", 2)  # returns before the rollout
    _wait_until_served(serving_registry, target_id, 2)
    assert vllm_server.completion_ids(LORA_NAME, prompt, MAX_TOKENS) == expected["sql-v2"]

    events = serving_registry.http.get(
        f"{API}/audit", params={"target": f"deployment:{target_id}", "limit": 100}
    ).json()["items"]
    actions = [event["action"] for event in reversed(events)]
    assert actions.count("deployment.request") == 2 and actions.count("deployment.succeed") == 2
    assert _target(serving_registry, target_id)["last_error"] is None
