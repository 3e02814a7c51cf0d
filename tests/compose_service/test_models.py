"""Base models in the registry (kind ``model``) and merged compositions published as models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import composer
from tests.support.compositions import publish_skills, submit
from tests.support.files import directory_files
from tests.support.rest import API, push, push_ok, version_files, wait_for_job


@pytest.fixture(scope="session")
def model_files(tiny_llama_dir: Path) -> dict[str, bytes]:
    return directory_files(tiny_llama_dir)


def test_a_model_directory_is_pushed_as_a_model_with_shapes_from_its_headers(
    client: TestClient, model_files: dict[str, bytes]
) -> None:
    version = push_ok(client, "acme/tiny-llama", model_files, kind="model")
    assert version["kind"] == "model"
    metadata = version["metadata"]
    assert metadata["model_type"] == "llama"
    assert metadata["architectures"] == ["LlamaForCausalLM"]
    assert metadata["dtypes"] == ["F32"]
    assert metadata["shards"] == ["model.safetensors"]
    assert metadata["parameter_count"] > 0 and metadata["tensor_count"] > 0


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"config.json": None}, "invalid_model"),
        ({"model.safetensors": None}, "invalid_model"),
        (
            {"model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json"},
            "invalid_safetensors",
        ),
        ({"config.json": b"[1, 2]"}, "invalid_model"),
        ({"flax_model.msgpack": b"\x00"}, "invalid_model"),
    ],
)
def test_an_invalid_model_is_refused(
    client: TestClient,
    model_files: dict[str, bytes],
    change: dict[str, bytes | None],
    code: str,
) -> None:
    files = dict(model_files)
    for path, data in change.items():
        if data is None:
            files.pop(path)
        else:
            files[path] = data
    response = push(client, "acme/broken", files, kind="model")
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code


def test_a_merged_composition_is_published_as_a_model_named_by_its_base_reference(
    client: TestClient,
    skill_adapters: dict[str, dict[str, bytes]],
    model_files: dict[str, bytes],
    tmp_path: Path,
) -> None:
    publish_skills(client, skill_adapters)
    base = push_ok(client, "acme/tiny-llama", model_files, kind="model")
    recipe = {
        "method": "linear",
        "inputs": [
            {"adapter": "acme/sql-gen@production", "weight": 1.0},
            {"adapter": "acme/toxic@1", "weight": -0.5},
        ],
        "output": {"type": "merged", "base": "acme/tiny-llama@1"},
        "device": "cpu",
    }
    job = wait_for_job(client, submit(client, recipe, "acme/sql-merged").json()["id"])
    assert job["state"] == "succeeded", (job["error"], job["log"])
    assert job["output_kind"] == "model"
    assert job["recipe"]["output"]["base"] == f"acme/tiny-llama@{base['digest']}"

    version = client.get(f"{API}/repos/acme/sql-merged/versions/1").json()
    assert version["kind"] == "model"
    assert version["metadata"]["model_type"] == "llama"
    parents = {(p["repository"], p["role"]) for p in version["lineage"]["parents"]}
    assert ("acme/tiny-llama", "base") in parents and ("acme/sql-gen", "input") in parents

    pulled = version_files(client, "acme/sql-merged", "1")
    root = tmp_path / "inputs"
    for item in job["inputs"]:
        for path, data in version_files(client, item["repository"], str(item["version"])).items():
            target = root / f"{item['repository']}@{item['digest']}" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    composer.compose(job["recipe"], tmp_path / "local", root=root)
    local = directory_files(tmp_path / "local")
    assert pulled == local

    # unchanged files are the base's own blobs; the changed weights are new ones
    base_blobs = {f["path"]: f["sha256"] for f in base["files"]}
    merged_blobs = {f["path"]: f["sha256"] for f in version["files"]}
    assert merged_blobs["config.json"] == base_blobs["config.json"]
    assert merged_blobs["model.safetensors"] != base_blobs["model.safetensors"]
    assert json.loads(pulled["config.json"]) == json.loads(model_files["config.json"])
