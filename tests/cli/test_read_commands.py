"""``lorry ls`` / ``show`` / ``alias`` / ``audit`` against a live registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import Lorry, variant_of
from tests.support.processes import free_port

REPO_KEYS = {"id", "namespace", "name", "kind", "latest_version", "aliases", "base_model"}
VERSION_KEYS = {"repository", "version", "digest", "commit", "files", "metadata", "aliases"}


@pytest.fixture(scope="module")
def published(
    registry_url: str, lora_adapter_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """``cli-read/adapter`` with versions 1 and 2 (2 adds a notes file)."""
    from typer.testing import CliRunner

    from cli.main import app

    second = variant_of(lora_adapter_dir, tmp_path_factory.mktemp("read") / "v2", "two")
    runner = CliRunner()
    for directory, message in ((lora_adapter_dir, "one"), (second, "two")):
        result = runner.invoke(
            app,
            ["push", str(directory), "cli-read/adapter", "-m", message],
            env={"LORRY_URL": registry_url},
        )
        assert result.exit_code == 0, result.stderr
    return "cli-read/adapter"


def _json(lorry: Lorry, *args: str) -> dict:
    result = lorry(*args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_ls_finds_repositories_by_query_and_namespace(lorry: Lorry, published: str) -> None:
    page = _json(lorry, "ls", "adapter", "--namespace", "cli-read")

    assert page["total"] == 1
    (repo,) = page["items"]
    assert REPO_KEYS <= repo.keys()
    assert repo["id"] == published and repo["latest_version"] == 2
    assert _json(lorry, "ls", "--namespace", "no-such-namespace")["items"] == []


def test_ls_prints_a_table(lorry: Lorry, published: str) -> None:
    result = lorry("ls", "--namespace", "cli-read")

    assert result.exit_code == 0, result.stderr
    assert published in result.stdout


def test_show_repository_lists_its_versions_newest_first(lorry: Lorry, published: str) -> None:
    shown = _json(lorry, "show", published)

    assert shown["repository"]["id"] == published
    assert [v["version"] for v in shown["versions"]["items"]] == [2, 1]
    human = lorry("show", published)
    assert human.exit_code == 0 and "versions" in human.stdout


def test_show_version_carries_files_and_metadata(lorry: Lorry, published: str) -> None:
    version = _json(lorry, "show", f"{published}@1")

    assert VERSION_KEYS <= version.keys()
    assert version["version"] == 1
    assert version["metadata"]["r"] == 8
    paths = {entry["path"] for entry in version["files"]}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= paths
    human = lorry("show", f"{published}@1", "--modules")
    assert human.exit_code == 0, human.stderr
    assert version["digest"] in human.stdout
    assert "q_proj" in human.stdout


def test_alias_set_move_remove_and_history(lorry: Lorry, published: str) -> None:
    first = _json(lorry, "alias", "set", published, "production", "1", "--reason", "launch")
    assert first["version"] == 1
    moved = _json(lorry, "alias", "set", published, "production", "2", "--reason", "better")
    assert moved["version"] == 2
    assert _json(lorry, "show", f"{published}@production")["version"] == 2
    listed = _json(lorry, "alias", "ls", published)
    assert {"production": 2}.items() <= {a["name"]: a["version"] for a in listed["items"]}.items()

    removed = lorry("alias", "rm", published, "production", "--reason", "retired")
    assert removed.exit_code == 0, removed.stderr

    history = _json(lorry, "alias", "history", published, "production")["items"]
    moves = [(e["from_version"], e["to_version"], e["reason"]) for e in history]
    assert moves == [(None, 1, "launch"), (1, 2, "better"), (2, None, "retired")]
    assert all(e["actor"] == "local" for e in history)
    gone = lorry("show", f"{published}@production")
    assert gone.exit_code == 1
    assert "error:" in gone.stderr


def test_alias_set_to_a_missing_version_fails_with_the_registry_message(
    lorry: Lorry, published: str
) -> None:
    result = lorry("alias", "set", published, "staging", "42")

    assert result.exit_code == 1
    assert "version_not_found" in result.stderr


def test_audit_filters_by_repository_action_and_time(lorry: Lorry, published: str) -> None:
    events = _json(lorry, "audit", "--repo", published)["items"]
    actions = {event["action"] for event in events}
    assert {"repository.create", "version.publish"} <= actions
    assert all(event["repository"] == published for event in events)

    publishes = _json(lorry, "audit", "--repo", published, "--action", "version.publish")
    assert publishes["total"] == 2
    assert {e["action"] for e in publishes["items"]} == {"version.publish"}
    assert _json(lorry, "audit", "--repo", published, "--since", "1h")["total"] >= 3
    assert _json(lorry, "audit", "--repo", published, "--until", "7d")["items"] == []
    human = lorry("audit", "--repo", published, "--limit", "5")
    assert human.exit_code == 0 and "version.publish" in human.stdout


def test_unreachable_registry_names_the_url_and_how_to_start_one(lorry: Lorry) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = lorry("ls", "--registry", url)

    assert result.exit_code == 1
    assert f"no Lorry server at {url}" in result.stderr
    assert "lorry serve" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("show", "not-a-repository"),
        ("pull", "acme/sql gen", "out"),
        ("alias", "ls", "acme/sql-gen@1"),
        ("audit", "--since", "yesterday"),
    ],
)
def test_malformed_arguments_are_usage_errors(lorry: Lorry, args: tuple[str, ...]) -> None:
    assert lorry(*args).exit_code == 2
