"""Composition through the registry: adapters pushed over REST, jobs, lineage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from registry import db
from registry.app import create_app
from registry.config import Settings
from tests.factories import build_lora_adapter
from tests.registry.conftest import directory_files, push_ok

API = "/api/v1"
FINISHED = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="session")
def skill_adapters(
    tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path
) -> dict[str, dict[str, bytes]]:
    """Three real PEFT adapters on the tiny Llama: a skill, a tone and a toxic one."""
    root = tmp_path_factory.mktemp("skills")
    specs = {"sql-gen": (8, 11), "formal-tone": (4, 12), "toxic": (4, 13)}
    return {
        name: directory_files(build_lora_adapter(tiny_llama_dir, root / name, r=r, seed=seed))
        for name, (r, seed) in specs.items()
    }


@pytest.fixture
def settings(backend_settings: Settings) -> Settings:
    backend_settings.job_heartbeat_s = 0.5
    db.upgrade(backend_settings)
    return backend_settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[TestClient]:
    """The embedded registry only, for rules that do not depend on the backends."""
    settings = Settings(home=tmp_path / "embedded", database_url=None, blob_url=None)
    db.upgrade(settings)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def publish_skills(
    client: TestClient | httpx.Client, adapters: dict[str, dict[str, bytes]]
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
    client: TestClient | httpx.Client,
    recipe: dict[str, Any],
    target: str,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> httpx.Response:
    return client.post(
        f"{API}/compositions",
        json={"recipe": recipe, "target": target, **body},
        headers=headers,
    )


def wait_for_job(
    client: TestClient | httpx.Client,
    job_id: str,
    *,
    timeout: float = 90.0,
    until: tuple[str, ...] = FINISHED,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"{API}/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["state"] in until:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']}: {job['log']}"
        time.sleep(0.1)


def pull_files(client: TestClient | httpx.Client, repository: str, ref: str) -> dict[str, bytes]:
    version = client.get(f"{API}/repos/{repository}/versions/{ref}").json()
    files = {}
    for entry in version["files"]:
        response = client.get(f"{API}/repos/{repository}/versions/{ref}/files/{entry['path']}")
        assert response.status_code == 200, response.text
        files[entry["path"]] = response.content
    return files
