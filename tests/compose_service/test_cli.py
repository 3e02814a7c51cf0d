"""`lorry compose --to`, `jobs`, `job`, `lineage`, `derived` against a real `lorry serve`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
import yaml
from typer.testing import CliRunner

from cli import compose_commands, jobs_commands, server_commands
from registry.config import Settings
from tests.support.compositions import publish_skills, sql_formal_recipe
from tests.support.processes import free_port, lorry_process, settings_env


@pytest.fixture
def live_url(tmp_path: Path, skill_adapters: dict[str, dict[str, bytes]]) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = settings_env(Settings(home=tmp_path / "home", port=port), job_heartbeat_s=0.5)
    with lorry_process(["serve"], env, tmp_path / "serve.log") as server:
        server.wait_until_serving(url)
        with httpx.Client(base_url=url, timeout=30) as http:
            publish_skills(http, skill_adapters)
        yield url


def _lorry() -> typer.Typer:
    app = typer.Typer()
    compose_commands.register(app)
    jobs_commands.register(app)
    server_commands.register(app)  # lorry worker
    return app


@pytest.mark.slow
def test_compose_to_the_registry_then_inspect_jobs_and_lineage(
    live_url: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    env = {"LORRY_URL": live_url, "COLUMNS": "200"}
    recipe = tmp_path / "sql-formal.yaml"
    recipe.write_text(yaml.safe_dump(sql_formal_recipe()), encoding="utf-8")

    composed = runner.invoke(
        _lorry(),
        ["compose", str(recipe), "--to", "acme/sql-formal", "--wait", "--alias", "prod"],
        env=env,
    )
    assert composed.exit_code == 0, composed.output
    assert "Published acme/sql-formal@1" in composed.output

    listed = runner.invoke(_lorry(), ["jobs", "--json", "--state", "succeeded"], env=env)
    assert listed.exit_code == 0, listed.output
    jobs = json.loads(listed.output)["items"]
    assert [job["result"]["version"] for job in jobs] == [1]
    job_id = jobs[0]["id"]

    shown = runner.invoke(_lorry(), ["job", job_id], env=env)
    assert shown.exit_code == 0 and "succeeded" in shown.output and "acme/toxic" in shown.output
    assert "compose" in shown.output
    compositions = runner.invoke(_lorry(), ["jobs", "--kind", "compose"], env=env)
    assert compositions.exit_code == 0 and "1 of 1 compose jobs" in compositions.output
    evaluations = runner.invoke(_lorry(), ["jobs", "--kind", "eval"], env=env)
    assert evaluations.exit_code == 0 and "0 of 0 eval jobs" in evaluations.output

    again = runner.invoke(
        _lorry(), ["compose", str(recipe), "--to", "acme/sql-formal", "--json"], env=env
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["id"] == job_id

    lineage = runner.invoke(_lorry(), ["lineage", "acme/sql-formal@prod"], env=env)
    assert lineage.exit_code == 0, lineage.output
    for parent in ("acme/sql-gen@1", "acme/formal-tone@1", "acme/toxic@1", "weight -0.4"):
        assert parent in lineage.output

    derived = runner.invoke(_lorry(), ["derived", "acme/toxic@1", "--json"], env=env)
    assert derived.exit_code == 0, derived.output
    items = json.loads(derived.output)["items"]
    assert [(i["repository"], i["version"], i["aliases"]) for i in items] == [
        ("acme/sql-formal", 1, ["prod"])
    ]

    cancel = runner.invoke(_lorry(), ["job", "cancel", job_id], env=env)
    assert cancel.exit_code == 1
    assert "already succeeded" in cancel.output


def test_compose_needs_either_out_or_to(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(sql_formal_recipe()), encoding="utf-8")
    result = CliRunner().invoke(
        _lorry(), ["compose", str(recipe), "--to", "acme/x", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    assert "either --out" in result.output


def test_worker_refuses_the_embedded_sqlite_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _lorry(), ["worker"], env={"LORRY_HOME": str(tmp_path), "LORRY_DATABASE_URL": ""}
    )
    assert result.exit_code == 1
    assert "PostgreSQL" in result.output


@pytest.mark.parametrize("command", ["lineage", "derived"])
def test_lineage_and_derived_refuse_a_malformed_reference_before_any_request(
    command: str,
) -> None:
    # Port 9 (discard) has no registry: a request would fail with "unreachable", not exit 2.
    result = CliRunner().invoke(
        _lorry(), [command, "sql-formal@prod"], env={"LORRY_URL": "http://127.0.0.1:9"}
    )
    assert result.exit_code == 2, result.output
    assert "NAMESPACE/NAME[@REF]" in result.output
