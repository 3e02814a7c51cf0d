"""Compositions through the registry's REST API: the skill adapters pushed, a recipe, a job."""

from __future__ import annotations

from typing import Any

from tests.support.rest import API, Http, push_ok

SKILL_SPECS = {"sql-gen": (8, 11), "formal-tone": (4, 12), "toxic": (4, 13)}
"""The ``skill_adapters`` fixture's adapters: name -> (rank, seed)."""


def publish_skills(
    client: Http, adapters: dict[str, dict[str, bytes]]
) -> dict[str, dict[str, Any]]:
    """Push the three adapters to acme/*; ``production`` of acme/sql-gen points at v1."""
    versions = {name: push_ok(client, f"acme/{name}", files) for name, files in adapters.items()}
    response = client.put(f"{API}/repos/acme/sql-gen/aliases/production", json={"version": 1})
    assert response.status_code == 200, response.text
    return versions


def sql_formal_recipe(**changes: Any) -> dict[str, Any]:
    """SQL skill + formal tone - toxicity, as registry references."""
    recipe: dict[str, Any] = {
        "method": "linear",
        "inputs": [
            {"adapter": "acme/sql-gen@production", "weight": 1.0},
            {"adapter": "acme/formal-tone@1", "weight": 0.6},
            {"adapter": "acme/toxic@latest", "weight": -0.4},
        ],
        "output": {"type": "adapter", "rank": 8},
        "device": "cpu",
    }
    recipe.update(changes)
    return recipe


def submit(
    client: Http,
    recipe: dict[str, Any],
    target: str,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> Any:
    """Post a composition job; returns the response (an ``httpx.Response``, or the test
    client's own response type)."""
    return client.post(
        f"{API}/compositions",
        json={"recipe": recipe, "target": target, **body},
        headers=headers,
    )
