"""GGUF exports through the registry's REST API: submit one, wait for it, the data it needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.files import directory_files
from tests.support.rest import API, Http, push_ok, wait_for_job

ADAPTER = "acme/sql-gen"
MODEL = "acme/tiny"


def exports_url(repository: str, ref: str | int) -> str:
    return f"{API}/repos/{repository}/versions/{ref}/exports"


def submit(client: Http, repository: str, ref: str | int, **body: Any) -> Any:
    return client.post(exports_url(repository, ref), json={"format": "gguf", **body})


def export_ok(client: Http, repository: str, ref: str | int, **body: Any) -> dict[str, Any]:
    """Submit an export, wait for its job and return the job; it must succeed."""
    response = submit(client, repository, ref, **body)
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"])
    assert job["state"] == "succeeded", (job["error"], job["log"])
    result: dict[str, Any] = job
    return result


def publish_model_and_adapter(client: Http, model_dir: Path, adapter_dir: Path) -> None:
    """The tokenizer-equipped tiny Llama as acme/tiny and the LoRA adapter as acme/sql-gen
    (alias production); the adapter's own base_model_name_or_path is a local directory."""
    push_ok(client, MODEL, directory_files(model_dir), kind="model")
    push_ok(client, ADAPTER, directory_files(adapter_dir), alias="production")
