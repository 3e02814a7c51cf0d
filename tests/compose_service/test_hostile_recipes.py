"""Hostile recipes are refused at submission, on both backend pairs: 422 naming the limit,
no job, no row, and work bounded by the caps rather than by what the caller sent."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from tests.support.compositions import publish_skills, sql_formal_recipe
from tests.support.rest import API, engine_of, row_counts


def _submit_raw(client: TestClient, recipe: dict[str, Any]) -> Any:
    """POST the recipe as JSON text that may hold NaN / Infinity (as Python's json writes it)."""
    body = json.dumps({"recipe": recipe, "target": "acme/hostile"}, allow_nan=True)
    return client.post(
        f"{API}/compositions", content=body, headers={"Content-Type": "application/json"}
    )


@contextmanager
def _counted_statements(client: TestClient) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statement: str = args[2]
        if "repositories" in statement or "versions" in statement:  # not the job sweeper's
            statements.append(statement)

    engine = engine_of(client)
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _weights(*weights: float) -> dict[str, Any]:
    return sql_formal_recipe(
        inputs=[{"adapter": "acme/sql-gen@production", "weight": w} for w in weights]
    )


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        (_weights(math.nan), "inputs.0.weight: Input should be a finite number"),
        (_weights(1.0, math.inf), "inputs.1.weight: Input should be a finite number"),
        (_weights(-math.inf), "inputs.0.weight: Input should be a finite number"),
        (_weights(1e308), "inputs.0.weight: Input should be less than or equal to 100"),
        (
            sql_formal_recipe(method="task_arithmetic", parameters={"lambda": math.nan}),
            "parameters.lambda: Input should be a finite number",
        ),
        (
            sql_formal_recipe(method="ties", parameters={"density": math.inf}),
            "parameters.density",
        ),
        (sql_formal_recipe(output={"type": "adapter", "rank": 10**9}), "between 1 and 65536"),
        (
            sql_formal_recipe(output={"type": "adapter", "rank": 4097}),
            "limit of 4096 (LORRY_MAX_OUTPUT_RANK)",
        ),
        (
            _weights(*([0.01] * 65)),
            "65 inputs, over this registry's limit of 64 (LORRY_MAX_RECIPE_INPUTS)",
        ),
        (
            _weights(*([0.0001] * 10_000)),
            "10000 inputs, over this registry's limit of 64 (LORRY_MAX_RECIPE_INPUTS)",
        ),
    ],
    ids=[
        "nan-weight",
        "inf-weight",
        "minus-inf-weight",
        "1e308-weight",
        "nan-lambda",
        "inf-density",
        "rank-1e9",
        "rank-over-cap",
        "65-inputs",
        "10000-inputs",
    ],
)
def test_hostile_recipes_are_refused_before_any_job_or_row(
    client: TestClient,
    skill_adapters: dict[str, dict[str, bytes]],
    recipe: dict[str, Any],
    message: str,
) -> None:
    publish_skills(client, skill_adapters)
    before = row_counts(client)
    response = _submit_raw(client, recipe)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_recipe"
    assert message in response.json()["message"]
    assert row_counts(client) == before
    assert client.get(f"{API}/jobs").json()["total"] == 0


def test_an_oversized_recipe_is_refused_before_any_query(
    client: TestClient, skill_adapters: dict[str, dict[str, bytes]]
) -> None:
    """10,000 inputs cost what one bad input costs: the cap is checked on the raw count."""
    publish_skills(client, skill_adapters)
    with _counted_statements(client) as one_bad:
        assert _submit_raw(client, _weights(math.nan)).status_code == 422
    with _counted_statements(client) as ten_thousand:
        assert _submit_raw(client, _weights(*([0.0001] * 10_000))).status_code == 422
    assert ten_thousand == one_bad == []


def test_resolution_queries_each_distinct_reference_once(
    client: TestClient, skill_adapters: dict[str, dict[str, bytes]]
) -> None:
    """A reference repeated 64 times is looked up once, as one given once (a job that
    starts meanwhile queries versions too, so the alias lookups are what is counted)."""
    publish_skills(client, skill_adapters)
    with _counted_statements(client) as single:
        response = _submit_raw(client, _weights(1.0))
        assert response.status_code == 202, response.text
    with _counted_statements(client) as repeated:
        response = _submit_raw(client, _weights(*([1 / 64] * 64)))
        assert response.status_code == 202, response.text
    alias_lookups = [[s for s in run if "JOIN aliases" in s] for run in (single, repeated)]
    assert [len(lookups) for lookups in alias_lookups] == [1, 1]
