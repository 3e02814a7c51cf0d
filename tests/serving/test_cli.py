"""``lorry webhook`` and ``lorry deploy`` against a real ``lorry serve`` process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from registry import db
from registry.config import Settings
from tests.serving.outbox import wait_until
from tests.serving.receiver import Receiver, receiving
from tests.support.processes import free_port, lorry_process, settings_env
from tests.support.rest import API, push_ok


@pytest.fixture
def registry_url(tmp_path: Path) -> Iterator[str]:
    settings = Settings(home=tmp_path / "home", port=free_port())
    db.upgrade(settings)
    url = f"http://127.0.0.1:{settings.port}"
    env = settings_env(settings, webhook_allow_cidrs="127.0.0.0/8", outbox_poll_s=0.1)
    with lorry_process(["serve"], env, tmp_path / "serve.log") as server:
        server.wait_until_serving(url)
        yield url


def run(url: str, *args: str) -> Any:
    result = CliRunner().invoke(app, list(args), env={"LORRY_URL": url, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return json.loads(result.output) if "--json" in args else result.output


def test_webhook_and_deploy_commands(registry_url: str, adapter_files: dict[str, bytes]) -> None:
    url = registry_url
    with receiving(Receiver()) as receiver:
        hook = run(url, "webhook", "add", "acme/*", "--url", receiver.url, "--event",
                   "alias.set", "--event", "deployment.succeed", "--json")  # fmt: skip
        assert hook["secret"].startswith("whsec_")
        listed = run(url, "webhook", "ls", "--json")
        assert [item["id"] for item in listed] == [hook["id"]] and "secret" not in listed[0]
        assert receiver.url in run(url, "webhook", "ls")

        with httpx.Client(base_url=url) as http:
            push_ok(http, "acme/sql", adapter_files, alias="production")
            response = http.patch(f"{API}/repos/acme/sql", json={"main_alias": "production"})
            assert response.status_code == 200, response.text
        target = run(url, "deploy", "add", "acme/sql", "--alias", "production", "--vllm",
                     receiver.url, "--name", "sql", "--json")  # fmt: skip
        assert target["alias_version"] == 1

        def served() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = run(url, "deploy", "ls", "--json")
            return items if items[0]["served_version"] == 1 else []

        wait_until(served, what="the rollout")
        table = run(url, "deploy", "ls", "acme/sql")
        assert "acme/sql@production" in table and "sql" in table

        ping = run(url, "webhook", "test", "acme", str(hook["id"]), "--json")

        def delivered() -> list[dict[str, Any]]:
            log = run(url, "webhook", "deliveries", "acme", str(hook["id"]), "--json")
            items: list[dict[str, Any]] = log["items"]
            return (
                items if len(items) >= 3 and all(i["state"] == "succeeded" for i in items) else []
            )

        items = wait_until(delivered, what="the deliveries")
        assert {item["event"] for item in items} == {"alias.set", "deployment.succeed", "ping"}
        assert ping["id"] in {item["id"] for item in items}
        again = run(url, "webhook", "redeliver", "acme", str(hook["id"]), ping["id"], "--json")
        assert again["redelivery_of"] == ping["id"]
        assert "ping" in run(url, "webhook", "deliveries", "acme", str(hook["id"]))

        assert "removed" in run(url, "deploy", "rm", "acme/sql", str(target["id"]))
        assert run(url, "deploy", "ls", "--json") == []
        assert "removed" in run(url, "webhook", "rm", "acme", str(hook["id"]))
        assert run(url, "webhook", "ls", "--json") == []
    paths = {request.path for request in receiver.requests}
    assert "/v1/load_lora_adapter" in paths


def test_a_refused_webhook_url_is_a_clear_cli_error(registry_url: str) -> None:
    result = CliRunner().invoke(
        app,
        ["webhook", "add", "acme/*", "--url", "http://10.1.2.3/x", "--event", "alias.set"],
        env={"LORRY_URL": registry_url, "COLUMNS": "200"},
    )
    assert result.exit_code == 1
    assert "destination_refused" in result.output and "LORRY_WEBHOOK_ALLOW" in result.output


def test_deploy_add_needs_exactly_one_server_and_a_name_for_vllm() -> None:
    env = {"LORRY_URL": "http://127.0.0.1:9", "COLUMNS": "200"}
    for args, message in (
        (["--alias", "production"], "exactly one of --vllm URL and --webhook URL"),
        (["--alias", "p", "--vllm", "http://a", "--webhook", "http://b"], "exactly one"),
        (["--alias", "production", "--vllm", "http://vllm:8000"], "--vllm needs --name"),
    ):
        result = CliRunner().invoke(app, ["deploy", "add", "acme/sql", *args], env=env)
        assert result.exit_code == 1, result.output
        assert message in result.output and "invalid_input" in result.output
