"""Evaluation jobs: real lm-evaluation-harness on a tiny Llama + PEFT adapter, with custom
tasks over local JSON, run as registry jobs on both backend pairs; bad input refused."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from registry.tables import EvalDocument
from tests.support.eval_tasks import (
    CHOICE_TASK,
    GENERATE_TASK,
    build_eval_models,
    task_files_body,
    write_task_folder,
)
from tests.support.files import directory_files
from tests.support.rest import API, engine_of, push_ok, row_counts, wait_for_job

BASE = "acme/tiny-llama"
ADAPTER = "acme/arith"
LIMIT = 8


@pytest.fixture(scope="module")
def eval_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("eval-run")
    base, adapter = build_eval_models(root)
    tasks = write_task_folder(root / "tasks")
    return {"base": base, "adapter": adapter, "tasks": tasks}


@pytest.fixture(scope="module")
def direct_results(eval_inputs: dict[str, Any]) -> dict[str, Any]:
    """lm-eval run here, in this process, on the same directories: what the job must record."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    previous = Path.cwd()
    os.chdir(eval_inputs["tasks"])  # the task YAML names its data relative to its folder
    try:
        results = simple_evaluate(
            model="hf",
            model_args={
                "pretrained": str(eval_inputs["base"]),
                "peft": str(eval_inputs["adapter"]),
                "dtype": "float32",
            },
            tasks=[CHOICE_TASK, GENERATE_TASK],
            device="cpu",
            limit=LIMIT,
            batch_size=1,
            task_manager=TaskManager(
                include_path=str(eval_inputs["tasks"]), include_defaults=False
            ),
            log_samples=False,
        )
    finally:
        os.chdir(previous)
    assert results is not None
    return dict(results["results"])


def _publish(client: TestClient, eval_inputs: dict[str, Any]) -> None:
    push_ok(client, BASE, directory_files(eval_inputs["base"]), kind="model")
    push_ok(client, ADAPTER, directory_files(eval_inputs["adapter"]), base_model=BASE)


def _evaluate(client: TestClient, ref: str = "1", **body: Any) -> Any:
    return client.post(f"{API}/repos/{ADAPTER}/versions/{ref}/evaluations", json=body)


def test_an_evaluation_job_runs_lm_eval_and_records_its_results(
    client: TestClient, eval_inputs: dict[str, Any], direct_results: dict[str, Any]
) -> None:
    _publish(client, eval_inputs)
    submitted = _evaluate(
        client,
        tasks=[CHOICE_TASK, GENERATE_TASK],
        task_files=task_files_body(eval_inputs["tasks"]),
        limit=LIMIT,
    )
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    assert (job["kind"], job["output_kind"], job["queue"]) == ("eval", "eval", "any")
    assert [(item["repository"], item["role"]) for item in job["inputs"]] == [
        (ADAPTER, "input"),
        (BASE, "base"),
    ]

    done = wait_for_job(client, job["id"], timeout=600)
    assert done["state"] == "succeeded", done["log"]
    assert done["result"]["repository"] == ADAPTER and done["result"]["version"] == 1
    listed = client.get(f"{API}/jobs", params={"repository": ADAPTER}).json()["items"]
    assert [item["id"] for item in listed] == [job["id"]]

    results = client.get(f"{API}/repos/{ADAPTER}/versions/1/evals").json()["items"]
    by_metric = {(item["task"], item["metric"], item["filter"]): item for item in results}
    choice = by_metric[(CHOICE_TASK, "acc", "none")]
    generated = by_metric[(GENERATE_TASK, "exact_match", "none")]
    assert choice["source"] == generated["source"] == "lm-eval"
    assert math.isclose(choice["value"], direct_results[CHOICE_TASK]["acc,none"])
    assert math.isclose(choice["stderr"], direct_results[CHOICE_TASK]["acc_stderr,none"])
    assert math.isclose(generated["value"], direct_results[GENERATE_TASK]["exact_match,none"])

    with Session(engine_of(client)) as session:
        stored = session.exec(
            select(EvalDocument).where(EvalDocument.id == choice["document_id"])
        ).one()
    document = stored.document
    assert document["results"][CHOICE_TASK]["sample_len"] == LIMIT
    assert {"configs", "versions", "n-shot", "config", "lm_eval_version"} <= set(document)
    model_args = document["config"]["model_args"]
    pinned = client.get(f"{API}/repos/{ADAPTER}/versions/1").json()["digest"]
    assert model_args["peft"] == f"{ADAPTER}@{pinned}"
    assert model_args["pretrained"].startswith(f"{BASE}@sha256:")
    assert str(client.app.state.settings.tmp_dir) not in json.dumps(document)  # type: ignore[attr-defined]

    actions = [
        event["action"]
        for event in client.get(f"{API}/audit", params={"repository": ADAPTER}).json()["items"]
    ]
    assert {"eval.submit", "eval.succeed", "eval.add"} <= set(actions)

    again = _evaluate(
        client,
        tasks=[CHOICE_TASK, GENERATE_TASK],
        task_files=task_files_body(eval_inputs["tasks"]),
        limit=LIMIT,
    )
    assert again.status_code == 200 and again.json()["reused"] is True
    assert again.json()["id"] == job["id"]


def test_bad_evaluation_requests_are_refused_before_a_job_exists(
    sqlite_client: TestClient, eval_inputs: dict[str, Any], tmp_path: Path
) -> None:
    client = sqlite_client
    _publish(client, eval_inputs)
    other = directory_files(eval_inputs["base"])
    push_ok(client, "acme/other-llama", {**other, "notes.txt": b"another base"}, kind="model")
    files = task_files_body(eval_inputs["tasks"])
    before = row_counts(client)

    cases: list[tuple[dict[str, Any], str, str, str]] = [
        (
            {"tasks": ["nonexistent_task"], "task_files": files},
            "1",
            "invalid_eval_tasks",
            "nonexistent_task",
        ),
        ({"tasks": [CHOICE_TASK]}, "1", "invalid_eval_tasks", "--tasks-from"),
        (
            {"tasks": [CHOICE_TASK], "task_files": [{"path": "x.json", "content": "{}"}]},
            "1",
            "invalid_eval_tasks",
            "no task definition",
        ),
        (
            {
                "tasks": [CHOICE_TASK],
                "task_files": [{"path": "../arith.yaml", "content": "task: x"}],
            },
            "1",
            "invalid_eval_tasks",
            "relative path",
        ),
        (
            {"tasks": [CHOICE_TASK], "tasks_from": f"{ADAPTER}@1"},
            "1",
            "invalid_eval_tasks",
            "eval_tasks/",
        ),
        (
            {"tasks": [CHOICE_TASK], "task_files": files, "base": "acme/other-llama"},
            "1",
            "invalid_input",
            f"adapter of {BASE}",
        ),
        ({"tasks": [CHOICE_TASK], "task_files": files}, "7", "version_not_found", "7"),
        (
            {"tasks": [CHOICE_TASK], "task_files": files, "promote": "bad alias!"},
            "1",
            "invalid_input",
            "alias",
        ),
    ]
    for body, ref, code, words in cases:
        response = _evaluate(client, ref, **body)
        assert response.status_code in (404, 422), (body, response.text)
        assert response.json()["code"] == code, response.text
        assert words in response.json()["message"], response.text
    model = client.post(
        f"{API}/repos/{BASE}/versions/1/evaluations",
        json={"tasks": [CHOICE_TASK], "task_files": files},
    )
    assert model.status_code == 422 and "holds models" in model.json()["message"]

    recipe = {
        "method": "linear",
        "inputs": [{"adapter": f"{ADAPTER}@1", "weight": 0.5}],
        "output": {"type": "adapter", "rank": 4},
    }
    evaluation = {"tasks": [CHOICE_TASK], "base": BASE, "tasks_from": f"{ADAPTER}@1"}
    recipe_cases: list[tuple[Any, str, str]] = [
        ("sql_eval", "invalid_input", "must be a list"),
        ([{**evaluation, "tasks_from": None}], "invalid_eval_tasks", "names no tasks_from"),
        ([{**evaluation, "base": None}], "invalid_input", "names no base"),
        ([evaluation], "invalid_eval_tasks", "has no eval_tasks/ folder"),
        ([{**evaluation, "queue": "tpu"}], "invalid_input", "queue"),
    ]
    for evaluate, code, words in recipe_cases:
        response = client.post(
            f"{API}/compositions",
            json={"recipe": {**recipe, "evaluate": evaluate}, "target": "acme/arith-half"},
        )
        assert response.status_code == 422, (evaluate, response.text)
        assert response.json()["code"] == code and words in response.json()["message"], (
            response.text
        )
    assert row_counts(client) == before


def test_a_cancelled_evaluation_stops_lm_eval_and_records_nothing(
    sqlite_client: TestClient, eval_inputs: dict[str, Any]
) -> None:
    client = sqlite_client
    _publish(client, eval_inputs)
    submitted = _evaluate(
        client, tasks=[CHOICE_TASK], task_files=task_files_body(eval_inputs["tasks"])
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    running = wait_for_job(client, job_id, until=("running", "succeeded", "failed"))
    assert running["state"] == "running", running["log"]
    assert client.post(f"{API}/jobs/{job_id}/cancel").status_code == 200
    cancelled = wait_for_job(client, job_id, timeout=300)
    assert cancelled["state"] == "cancelled", cancelled["log"]
    assert client.get(f"{API}/repos/{ADAPTER}/versions/1/evals").json()["items"] == []
    events = client.get(f"{API}/audit", params={"action": "eval.add"}).json()["items"]
    assert events == []
