"""Pull records (the access log) and the repository's main alias, through the real clients
and ``lorry``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import RevisionNotFoundError
from typer.testing import CliRunner

from cli import access_commands, registry_commands, repo_commands
from tests.hub.live import ADAPTER_REPO, LiveRegistry
from tests.support.files import directory_files
from tests.support.rest import API, version_files


def _lorry(registry: LiveRegistry, *args: str) -> str:
    app = typer.Typer()
    registry_commands.register(app)
    repo_commands.register(app)
    access_commands.register(app)
    result = CliRunner().invoke(app, list(args), env={"LORRY_URL": registry.url, "COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def _pulls(registry: LiveRegistry, repository: str) -> list[dict]:
    registry.flush_access_log()
    response = registry.http.get(f"{API}/access-log", params={"repository": repository})
    assert response.status_code == 200, response.text
    items: list[dict] = response.json()["items"]
    return items


def test_every_download_is_recorded_with_address_and_version(
    live_registry: LiveRegistry, hub_env: Path
) -> None:
    v1 = live_registry.versions["adapter-v1"]
    hf_hub_download(
        ADAPTER_REPO,
        "adapter_model.safetensors",
        revision="production",
        cache_dir=hub_env,
        endpoint=live_registry.url,
        headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.2"},
    )
    (pull,) = _pulls(live_registry, ADAPTER_REPO)
    assert pull["actor"] == "local"
    assert (pull["repository"], pull["path"]) == (ADAPTER_REPO, "adapter_model.safetensors")
    after = pull
    assert after["version"] == 1
    assert after["digest"] == v1["digest"]
    assert after["revision"] == "production"
    assert after["via"] == "hub"
    # uvicorn trusts the loopback peer as a proxy and takes the nearest untrusted hop.
    assert after["address"] == "10.0.0.2"
    assert after["forwarded_for"] == "203.0.113.7, 10.0.0.2"
    assert "hf_hub/" in after["user_agent"]
    assert after["redirect"] is live_registry.presigns

    # A cached blob is only checked (HEAD), never downloaded again: no new pull.
    hf_hub_download(
        ADAPTER_REPO,
        "adapter_model.safetensors",
        revision="1",
        cache_dir=hub_env,
        endpoint=live_registry.url,
    )
    assert len(_pulls(live_registry, ADAPTER_REPO)) == 1

    snapshot_download(
        ADAPTER_REPO, revision="2", cache_dir=hub_env / "other", endpoint=live_registry.url
    )
    pulls = _pulls(live_registry, ADAPTER_REPO)
    v2_paths = {p["path"] for p in pulls if p["version"] == 2}
    assert v2_paths == {f["path"] for f in live_registry.versions["adapter-v2"]["files"]}

    output = _lorry(live_registry, "downloads", ADAPTER_REPO, "--json")
    listed = json.loads(output)["items"]
    assert [item["id"] for item in listed] == [item["id"] for item in pulls]
    only_v2 = json.loads(_lorry(live_registry, "downloads", f"{ADAPTER_REPO}@2", "--json"))
    assert {item["path"] for item in only_v2["items"]} == v2_paths

    # The counts that `lorry show` and the console display.
    v1_count = live_registry.http.get(f"{API}/repos/{ADAPTER_REPO}/versions/1").json()
    assert v1_count["downloads"] == 1
    repo = live_registry.http.get(f"{API}/repos/{ADAPTER_REPO}").json()
    assert repo["downloads"] == len(pulls)
    shown = _lorry(live_registry, "show", f"{ADAPTER_REPO}@2")
    assert re.search(rf"downloads\s+{len(v2_paths)}\s", shown), shown
    # Downloads are reads: none of them is an audit event.
    audit = live_registry.http.get(f"{API}/audit", params={"repository": ADAPTER_REPO}).json()
    assert "version.pull" not in {event["action"] for event in audit["items"]}


def test_main_alias_setting_chooses_what_main_serves(
    live_registry: LiveRegistry, hub_env: Path
) -> None:
    api = HfApi(endpoint=live_registry.url)
    v1, v2 = live_registry.versions["adapter-v1"], live_registry.versions["adapter-v2"]
    assert api.model_info(ADAPTER_REPO, revision="main").sha == v2["commit"]

    output = _lorry(live_registry, "repo", "set", ADAPTER_REPO, "--main-alias", "production")
    assert "production" in output and "version 1" in output
    assert api.model_info(ADAPTER_REPO, revision="main").sha == v1["commit"]
    folder = snapshot_download(ADAPTER_REPO, cache_dir=hub_env, endpoint=live_registry.url)
    assert directory_files(Path(folder)) == version_files(live_registry.http, ADAPTER_REPO, "1")

    shown = json.loads(_lorry(live_registry, "repo", "show", ADAPTER_REPO, "--json"))
    assert (shown["main_alias"], shown["main_version"]) == ("production", 1)

    # Moving the alias moves main with it.
    moved = live_registry.http.put(
        f"{API}/repos/{ADAPTER_REPO}/aliases/production", json={"version": 2}
    )
    assert moved.status_code == 200, moved.text
    assert api.model_info(ADAPTER_REPO).sha == v2["commit"]

    # Deleting the alias leaves `main` unresolved, with a message that says what to do.
    deleted = live_registry.http.delete(f"{API}/repos/{ADAPTER_REPO}/aliases/production")
    assert deleted.status_code == 204, deleted.text
    with pytest.raises(RevisionNotFoundError, match="clear-main-alias"):
        api.model_info(ADAPTER_REPO)
    assert api.list_repo_refs(ADAPTER_REPO).branches == []

    _lorry(live_registry, "repo", "set", ADAPTER_REPO, "--clear-main-alias")
    shown = json.loads(_lorry(live_registry, "repo", "show", ADAPTER_REPO, "--json"))
    assert (shown["main_alias"], shown["main_version"]) == (None, 2)

    updates = live_registry.http.get(
        f"{API}/audit", params={"action": "repository.update", "repository": ADAPTER_REPO}
    ).json()["items"]
    assert [(u["before"], u["after"]) for u in reversed(updates)] == [
        ({"main_alias": None}, {"main_alias": "production"}),
        ({"main_alias": "production"}, {"main_alias": None}),
    ]


def test_repository_settings_refuse_unknown_or_reserved_aliases(
    live_registry: LiveRegistry,
) -> None:
    path = f"{API}/repos/{ADAPTER_REPO}"
    unknown = live_registry.http.patch(path, json={"main_alias": "staging"})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "alias_not_found")
    reserved = live_registry.http.patch(path, json={"main_alias": "main"})
    assert reserved.status_code == 422
    missing = live_registry.http.patch(f"{API}/repos/acme/nothing", json={"main_alias": None})
    assert (missing.status_code, missing.json()["code"]) == (404, "repository_not_found")

    updated = live_registry.http.patch(
        path, json={"description": "SQL from questions", "tags": ["sql", "sql", "en"]}
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["description"], body["tags"], body["main_alias"]) == (
        "SQL from questions",
        ["sql", "en"],
        None,
    )
    cleared = live_registry.http.patch(path, json={"main_alias": ""})
    assert cleared.status_code == 200
    assert cleared.json()["main_alias"] is None


def test_native_api_downloads_are_recorded_as_pulls(live_registry: LiveRegistry) -> None:
    path = f"{API}/repos/{ADAPTER_REPO}/versions/production/files/adapter_config.json"
    assert live_registry.http.head(path).status_code == 200
    assert _pulls(live_registry, ADAPTER_REPO) == []
    response = live_registry.http.get(path, headers={"User-Agent": "lorry-test"})
    assert response.status_code == 200
    (pull,) = _pulls(live_registry, ADAPTER_REPO)
    assert (pull["version"], pull["path"]) == (1, "adapter_config.json")
    assert pull["via"] == "api"
    assert pull["revision"] == "production"
    assert pull["address"] == "127.0.0.1"
    assert pull["user_agent"] == "lorry-test"
