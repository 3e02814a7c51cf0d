"""An adapter's base model is a model repository of the registry, never a local path:
the repository setting (Hub commits), automatic links, what is shown, the export default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from sqlmodel import col, select

from registry.services.exports import _registry_base
from registry.tables import Version
from tests.hub.live import LiveRegistry
from tests.hub.pushing import database
from tests.support.files import directory_files
from tests.support.rest import API, push_ok

BASE = "acme/llama"
ADAPTER = "acme/sql-gen"


def _adapter_with_base(source: Path, target: Path, base: str) -> Path:
    shutil.copytree(source, target)
    config = json.loads((target / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base
    (target / "adapter_config.json").write_text(json.dumps(config))
    return target


@pytest.fixture
def with_base(blank_registry: LiveRegistry, tiny_llama_dir: Path) -> LiveRegistry:
    push_ok(blank_registry.http, BASE, directory_files(tiny_llama_dir), kind="model")
    return blank_registry


def _repo(registry: LiveRegistry, repo: str) -> dict[str, object]:
    response = registry.http.get(f"{API}/repos/{repo}")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_local_base_path_is_never_shown(
    with_base: LiveRegistry, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    adapter = _adapter_with_base(lora_adapter_dir, tmp_path / "a", "/home/me/llama")
    push_ok(with_base.http, ADAPTER, directory_files(adapter))
    repo = _repo(with_base, ADAPTER)
    assert repo["base_model"] is None
    assert repo["base_model_link"] is None
    version = with_base.http.get(f"{API}/repos/{ADAPTER}/versions/1").json()
    assert "/home/me" not in json.dumps(version["card"])
    assert "base_model" not in version["card"]
    assert not [tag for tag in repo["tags"] if "/home/me" in tag]  # type: ignore[union-attr]


def test_a_base_that_names_a_model_repository_here_is_linked_automatically(
    with_base: LiveRegistry, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    adapter = _adapter_with_base(lora_adapter_dir, tmp_path / "a", BASE)
    push_ok(with_base.http, ADAPTER, directory_files(adapter))
    repo = _repo(with_base, ADAPTER)
    assert (repo["base_model"], repo["base_model_link"]) == (BASE, BASE)
    card = with_base.http.get(f"{API}/repos/{ADAPTER}/versions/1").json()["card"]
    assert card["base_model"] == BASE  # the pushed README.md named the local directory
    assert f"base_model:adapter:{BASE}" in card["tags"]
    assert f"base_model:adapter:{BASE}" in repo["tags"]  # type: ignore[operator]


def test_the_repository_setting_links_hub_commits_and_is_the_export_default(
    with_base: LiveRegistry, lora_adapter_dir: Path, hub_env: Path
) -> None:
    api = HfApi(endpoint=with_base.url, token=False)
    api.create_repo(ADAPTER)
    refused = with_base.http.patch(f"{API}/repos/{ADAPTER}", json={"base_model": "acme/nothing"})
    assert refused.status_code in (404, 422), refused.text
    assert "not a model repository" in refused.json()["message"]
    not_a_ref = with_base.http.patch(f"{API}/repos/{ADAPTER}", json={"base_model": "/home/me/x"})
    assert not_a_ref.status_code == 422
    assert _repo(with_base, ADAPTER)["base_model_setting"] is None

    setting = with_base.http.patch(f"{API}/repos/{ADAPTER}", json={"base_model": f"{BASE}@1"})
    assert setting.status_code == 200, setting.text
    assert setting.json()["base_model_setting"] == f"{BASE}@1"

    # lora_adapter_dir's base_model_name_or_path is the tiny Llama's local directory.
    api.upload_folder(repo_id=ADAPTER, folder_path=lora_adapter_dir)
    repo = _repo(with_base, ADAPTER)
    assert (repo["base_model"], repo["base_model_link"]) == (f"{BASE}@1", f"{BASE}@1")
    assert str(lora_adapter_dir.parent) not in json.dumps(repo)
    with database(with_base.settings) as session:
        version = session.exec(
            select(Version).where(col(Version.base_model_link).is_not(None))
        ).one()
        assert _registry_base(session, version) == f"{BASE}@1"

    cleared = with_base.http.patch(f"{API}/repos/{ADAPTER}", json={"base_model": ""})
    assert cleared.json()["base_model_setting"] is None
