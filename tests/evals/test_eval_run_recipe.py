"""Compose -> evaluate -> promote if it passes: a recipe's ``evaluate`` submits evaluation
jobs once the composition publishes, whose promotion the alias's gate judges; and `lorry
eval run` from the command line (a real process) against a live registry."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.config import Settings
from tests.support.eval_tasks import CHOICE_TASK, build_eval_models, write_task_folder
from tests.support.files import directory_files
from tests.support.live import LiveServer, start_live_server
from tests.support.rest import API, push_ok, wait_for_job

BASE = "acme/tiny-llama"
SOURCE = "acme/arith"
TARGET = "acme/arith-half"
LIMIT = 12


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    server = start_live_server(settings)
    try:
        yield server
    finally:
        server.stop()


def _recipe(**evaluation: Any) -> dict[str, Any]:
    recipe: dict[str, Any] = {
        "method": "linear",
        "inputs": [{"adapter": f"{SOURCE}@1", "weight": 0.5}],
        "output": {"type": "adapter", "rank": 4},
        "device": "cpu",
    }
    if evaluation:
        recipe["evaluate"] = [evaluation]
    return recipe


def _policy(http: httpx.Client, requirement: str) -> int:
    for rule in http.get(f"{API}/policies").json()["items"]:
        assert http.delete(f"{API}/policies/{rule['id']}").status_code == 204
    created = http.post(
        f"{API}/policies",
        json={"repository": "acme/*", "alias": "production", "requirements": [requirement]},
    )
    assert created.status_code == 201, created.text
    rule_id: int = created.json()["id"]
    return rule_id


def _audit(http: httpx.Client, action: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = http.get(
        f"{API}/audit", params={"repository": TARGET, "action": action}
    ).json()["items"]
    return items


def test_a_recipe_evaluates_its_result_and_promotes_only_what_the_gate_allows(
    live: LiveServer, tmp_path: Path
) -> None:
    base, adapter = build_eval_models(tmp_path / "models")
    tasks = write_task_folder(tmp_path / "tasks")
    suite = {f"eval_tasks/{path}": data for path, data in directory_files(tasks).items()}
    with httpx.Client(base_url=live.url, timeout=60) as http:
        push_ok(http, BASE, directory_files(base), kind="model")
        push_ok(http, SOURCE, {**directory_files(adapter), **suite}, base_model=BASE)
        _policy(http, f"{CHOICE_TASK}/acc >= 1.0")
        evaluation = {
            "tasks": [CHOICE_TASK],
            "base": BASE,
            "tasks_from": f"{SOURCE}@1",
            "limit": LIMIT,
            "promote": "production",
        }
        body = {"recipe": _recipe(**evaluation), "target": TARGET, "message": "CAB-1"}
        submitted = http.post(f"{API}/compositions", json=body)
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["recipe"]["evaluate"][0]["tasks_from"].startswith(
            f"{SOURCE}@sha256:"
        )
        composed = wait_for_job(http, submitted.json()["id"], timeout=300)
        assert composed["state"] == "succeeded", composed["log"]
        found = re.search(
            r"evaluation job ([0-9a-f]{32}) submitted",
            " ".join(line["message"] for line in composed["log"]),
        )
        assert found is not None, composed["log"]

        evaluated = wait_for_job(http, found[1], timeout=600)
        assert evaluated["state"] == "succeeded", evaluated["log"]
        assert evaluated["kind"] == "eval" and evaluated["alias"] == "production"
        assert [item["role"] for item in evaluated["inputs"]] == ["input", "base", "tasks"]
        results = http.get(f"{API}/repos/{TARGET}/versions/1/evals").json()["items"]
        (accuracy,) = [item for item in results if item["metric"] == "acc"]
        value = accuracy["value"]
        assert 0.0 <= value < 1.0  # a random tiny model: the >= 1.0 gate must refuse it
        outcome = evaluated["log"][-1]["message"]
        assert "production not moved" in outcome and f"{CHOICE_TASK}/acc" in outcome
        assert http.get(f"{API}/repos/{TARGET}/aliases/production").status_code == 404
        (refused,) = _audit(http, "eval.promotion_refused")
        assert refused["after"]["error"] == "evidence_required"
        assert refused["after"]["job"] == evaluated["id"]

        again = http.post(f"{API}/compositions", json=body)
        assert again.status_code == 200 and again.json()["id"] == composed["id"]
        plain = http.post(f"{API}/compositions", json={**body, "recipe": _recipe()})
        assert plain.status_code == 202 and plain.json()["id"] != composed["id"]
        recomposed = wait_for_job(http, plain.json()["id"], timeout=300)
        # evaluate is not part of what is composed: the same version, the same digest
        assert recomposed["result"] == composed["result"], recomposed["log"]

        _policy(http, f"{CHOICE_TASK}/acc >= {value!r}")
    env = {**os.environ, "LORRY_URL": live.url, "COLUMNS": "200"}
    command = [sys.executable, "-m", "cli.main", "eval", "run", f"{TARGET}@1"]
    options = ["--base", BASE, "--tasks", CHOICE_TASK, "--tasks-from", str(tasks)]
    options += ["--limit", str(LIMIT), "--promote", "production", "--reason", "CAB-2", "--json"]
    done = subprocess.run(
        [*command, *options], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout + done.stderr
    printed = json.loads(done.stdout)
    assert printed["outcome"].endswith("; production -> 1)")
    newest = max(printed["results"], key=lambda item: item["id"])
    assert newest["value"] == value
    with httpx.Client(base_url=live.url, timeout=60) as http:
        alias = http.get(f"{API}/repos/{TARGET}/aliases/production").json()
        assert alias["version"] == 1
        (moved,) = _audit(http, "alias.set")
        evidence = moved["after"]["evidence"]
        assert [item["result"] for item in evidence] == [newest["id"]], evidence
