"""`lorry compose RECIPE --to NS/NAME`: submit a composition to the registry and follow it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from cli.client import LorryClient
from cli.common import echo_json, fail, registry_client, stderr, stdout, step_progress

__all__ = ["compose_remote", "follow_job", "read_recipe_file"]

FINISHED = ("succeeded", "failed", "cancelled")
_POLL_S = 0.5


def read_recipe_file(path: Path) -> dict[str, Any]:
    """The recipe as data (YAML, or JSON by its suffix); the registry validates it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read recipe {path}: {exc.strerror or exc}", "local_io")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        fail(f"recipe {path} is not valid {path.suffix or 'YAML'}: {exc}", "invalid_recipe")
    if not isinstance(data, dict):
        fail(f"recipe {path} must be a mapping with method, inputs and output", "invalid_recipe")
    return data


def follow_job(client: LorryClient, job: dict[str, Any], *, bar: bool) -> dict[str, Any]:
    """Poll the job until it ends; with ``bar``, show modules done / total on stderr."""
    if not bar:
        while job["state"] not in FINISHED:
            time.sleep(_POLL_S)
            job = client.request("GET", f"/api/v1/jobs/{job['id']}").json()
        return job
    with step_progress(stderr) as progress:
        task = progress.add_task(job["state"], total=None)
        while True:
            done, total = job["progress"]["done"], job["progress"]["total"]
            label = job["progress"]["module"] or job["state"]
            progress.update(task, completed=done, total=total or None, description=label)
            if job["state"] in FINISHED:
                return job
            time.sleep(_POLL_S)
            job = client.request("GET", f"/api/v1/jobs/{job['id']}").json()


def print_outcome(job: dict[str, Any]) -> None:
    if job["state"] == "succeeded":
        result = job["result"]
        stdout.print(
            f"[green]Published[/green] {result['repository']}@{result['version']} "
            f"({result['digest']}) by job {job['id']}"
        )
    elif job["state"] == "failed":
        error = job["error"] or {}
        fail(f"job {job['id']} failed: {error.get('message', '')}", error.get("code"))
    else:
        fail(f"job {job['id']} was cancelled", "cancelled")


def compose_remote(
    recipe: Path,
    target: str,
    *,
    alias: str | None,
    message: str | None,
    wait: bool,
    registry: str | None,
    as_json: bool,
) -> None:
    """Submit RECIPE (registry references as inputs) to publish into TARGET."""
    body = {"recipe": read_recipe_file(recipe), "target": target}
    if alias is not None:
        body["alias"] = alias
    if message is not None:
        body["message"] = message
    with registry_client(registry) as client:
        job = client.request("POST", "/api/v1/compositions", json=body).json()
        if not wait:
            if as_json:
                echo_json(job)
                return
            note = " (an identical job answered)" if job.get("reused") else ""
            stdout.print(f"Job [bold]{job['id']}[/bold] {job['state']}{note}")
            stdout.print(f"Follow it with `lorry job {job['id']}`")
            return
        if not as_json:
            stderr.print(f"Job {job['id']} {job['state']}; Ctrl-C stops waiting (not the job)")
        try:
            job = follow_job(client, job, bar=not as_json)
        except KeyboardInterrupt:
            fail(
                f"stopped waiting; job {job['id']} goes on (`lorry job cancel {job['id']}` "
                "cancels it)"
            )
    if as_json:
        echo_json(job)
        if job["state"] != "succeeded":
            fail(f"job {job['id']} {job['state']}", (job.get("error") or {}).get("code"))
        return
    print_outcome(job)
