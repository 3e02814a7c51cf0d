"""Compose registry adapters through REST, on both backend pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import composer
from registry.config import Settings
from tests.support.compositions import publish_skills, sql_formal_recipe, submit
from tests.support.rest import API, push_ok, version_files, wait_for_job
from tests.support.tokens import bearer, make_token


def _local_compose(
    client: TestClient, recipe: dict[str, Any], inputs: list[dict[str, Any]], tmp_path: Path
) -> dict[str, bytes]:
    """What the local composer writes for the job's pinned recipe, from pulled inputs."""
    root = tmp_path / "inputs"
    for item in inputs:
        pinned = f"{item['repository']}@{item['digest']}"
        for path, data in version_files(client, item["repository"], str(item["version"])).items():
            target = root / pinned / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    out = tmp_path / "local-out"
    composer.compose(recipe, out, root=root)
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
    }


def test_composition_publishes_the_bytes_the_local_composer_writes(
    client: TestClient, skill_adapters: dict[str, dict[str, bytes]], tmp_path: Path
) -> None:
    publish_skills(client, skill_adapters)

    response = submit(client, sql_formal_recipe(), "acme/sql-formal", alias="candidate")
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] in ("queued", "running")
    assert [(i["repository"], i["version"]) for i in job["inputs"]] == [
        ("acme/sql-gen", 1),
        ("acme/formal-tone", 1),
        ("acme/toxic", 1),
    ]
    assert job["recipe"]["inputs"][0]["adapter"] == f"acme/sql-gen@{job['inputs'][0]['digest']}"

    done = wait_for_job(client, job["id"])
    assert done["state"] == "succeeded", (done["error"], done["log"])
    assert done["result"]["repository"] == "acme/sql-formal"
    assert done["progress"]["done"] == done["progress"]["total"] > 0
    assert done["started_at"] is not None and done["duration_s"] is not None

    version = client.get(f"{API}/repos/acme/sql-formal/versions/candidate").json()
    assert version["version"] == done["result"]["version"]
    assert version["digest"] == done["result"]["digest"]
    assert version["kind"] == "adapter"
    pulled = version_files(client, "acme/sql-formal", "candidate")
    local = _local_compose(client, done["recipe"], done["inputs"], tmp_path)
    assert set(pulled) == set(local)
    assert all(pulled[path] == local[path] for path in local)

    actions = [
        e["action"]
        for e in client.get(f"{API}/audit", params={"repository": "acme/sql-formal"}).json()[
            "items"
        ]
    ]
    assert "composition.submit" in actions and "composition.succeed" in actions


def test_lineage_lists_parents_and_derived_finds_children_with_aliases(
    client: TestClient, skill_adapters: dict[str, dict[str, bytes]]
) -> None:
    versions = publish_skills(client, skill_adapters)
    first = submit(client, sql_formal_recipe(), "acme/sql-formal", alias="production").json()
    child = wait_for_job(client, first["id"])
    assert child["state"] == "succeeded", child
    second_recipe = {
        "method": "linear",
        "inputs": [
            {"adapter": "acme/sql-formal@production", "weight": 1.0},
            {"adapter": "acme/formal-tone@1", "weight": 0.2},
        ],
        "device": "cpu",
    }
    grandchild = wait_for_job(
        client, submit(client, second_recipe, "acme/sql-formal-2").json()["id"]
    )
    assert grandchild["state"] == "succeeded", grandchild

    lineage = client.get(f"{API}/repos/acme/sql-formal/versions/production/lineage").json()
    assert lineage["method"] == "linear"
    assert lineage["job"] == child["id"]
    assert [
        (p["repository"], p["version"], p["digest"], p["weight"]) for p in lineage["parents"]
    ] == [
        ("acme/sql-gen", 1, versions["sql-gen"]["digest"], 1.0),
        ("acme/formal-tone", 1, versions["formal-tone"]["digest"], 0.6),
        ("acme/toxic", 1, versions["toxic"]["digest"], -0.4),
    ]
    deep = client.get(f"{API}/repos/acme/sql-formal-2/versions/latest/lineage").json()
    assert deep["parents"][0]["lineage"]["parents"][2]["repository"] == "acme/toxic"

    stored = client.get(f"{API}/repos/acme/sql-formal/versions/production").json()["lineage"]
    assert stored["recipe"] == child["recipe"]
    assert stored["seed"] == 0 and "torch" in stored["libraries"]

    derived = client.get(f"{API}/repos/acme/toxic/versions/1/derived").json()
    found = {(d["repository"], d["version"]): d for d in derived["items"]}
    assert set(found) == {("acme/sql-formal", 1), ("acme/sql-formal-2", 1)}
    assert found[("acme/sql-formal", 1)]["aliases"] == ["production"]
    assert found[("acme/sql-formal", 1)]["depth"] == 1
    assert found[("acme/sql-formal-2", 1)]["depth"] == 2
    assert found[("acme/sql-formal-2", 1)]["via"] == "acme/sql-formal@1"


def test_resubmitting_the_same_recipe_returns_the_same_version_without_computing(
    client: TestClient, skill_adapters: dict[str, dict[str, bytes]]
) -> None:
    publish_skills(client, skill_adapters)
    first = wait_for_job(
        client, submit(client, sql_formal_recipe(), "acme/sql-formal").json()["id"]
    )
    assert first["state"] == "succeeded", first

    again = submit(client, sql_formal_recipe(), "acme/sql-formal")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"] and again.json()["reused"] is True
    assert again.json()["result"] == first["result"]
    assert client.get(f"{API}/jobs", params={"repository": "acme/sql-formal"}).json()["total"] == 1
    assert client.get(f"{API}/repos/acme/sql-formal/versions").json()["total"] == 1

    # an alias that moves changes the pinned inputs: a new job, not the old answer
    push_v2 = client.put(f"{API}/repos/acme/sql-gen/aliases/production", json={"version": 1})
    assert push_v2.status_code == 200
    other = submit(client, sql_formal_recipe(parameters={"seed": 3}), "acme/sql-formal")
    assert other.status_code == 202 and other.json()["id"] != first["id"]


def test_cancelling_a_queued_or_finished_job(
    client: TestClient, skill_adapters: dict[str, dict[str, bytes]]
) -> None:
    publish_skills(client, skill_adapters)
    job = wait_for_job(client, submit(client, sql_formal_recipe(), "acme/sql-formal").json()["id"])
    refused = client.post(f"{API}/jobs/{job['id']}/cancel")
    assert refused.status_code == 409
    assert refused.json()["code"] == "conflict"
    missing = client.get(f"{API}/jobs/nope")
    assert missing.status_code == 404 and missing.json()["code"] == "job_not_found"


@pytest.mark.parametrize(
    ("recipe", "code"),
    [
        (sql_formal_recipe(method="no-such-method"), "invalid_recipe"),
        (sql_formal_recipe(inputs=[{"adapter": "acme/missing@1"}]), "repository_not_found"),
        (sql_formal_recipe(inputs=[{"adapter": "acme/sql-gen@staging"}]), "alias_not_found"),
        (sql_formal_recipe(inputs=[{"adapter": "./local-dir"}]), "invalid_reference"),
    ],
)
def test_a_bad_composition_is_refused_at_submission(
    client: TestClient,
    skill_adapters: dict[str, dict[str, bytes]],
    recipe: dict[str, Any],
    code: str,
) -> None:
    publish_skills(client, skill_adapters)
    response = submit(client, recipe, "acme/sql-formal")
    assert response.status_code in (404, 422), response.text
    assert response.json()["code"] == code
    assert client.get(f"{API}/jobs").json()["total"] == 0


def test_a_running_job_cancelled_stops_between_modules_and_publishes_nothing(
    client: TestClient, skill_adapters: dict[str, dict[str, bytes]], settings: Settings
) -> None:
    publish_skills(client, skill_adapters)
    settings.compose_module_delay_s = 0.4
    job = submit(client, sql_formal_recipe(), "acme/sql-formal").json()
    running = wait_for_job(client, job["id"], until=("running",))
    assert running["state"] == "running"

    asked = client.post(f"{API}/jobs/{job['id']}/cancel")
    assert asked.status_code == 200, asked.text
    assert asked.json()["cancel_requested"] is True
    done = wait_for_job(client, job["id"])
    assert done["state"] == "cancelled", done["log"]
    assert done["progress"]["done"] < 4
    assert client.get(f"{API}/repos/acme/sql-formal").status_code == 404

    cancelled = client.get(f"{API}/jobs", params={"state": "cancelled"}).json()
    assert [item["id"] for item in cancelled["items"]] == [job["id"]]
    assert client.get(f"{API}/jobs", params={"state": "succeeded"}).json()["total"] == 0
    assert client.get(f"{API}/jobs", params={"repository": "acme/other"}).json()["total"] == 0
    events = client.get(f"{API}/audit", params={"action": "composition.cancel"}).json()["items"]
    assert [event["target"] for event in events] == [f"job:{job['id']}"]


def test_a_token_composes_only_into_and_from_namespaces_it_covers(
    sqlite_client: TestClient, skill_adapters: dict[str, dict[str, bytes]]
) -> None:
    client = sqlite_client
    publish_skills(client, skill_adapters)
    push_ok(client, "secret/weights", skill_adapters["toxic"])
    writer = bearer(make_token(client, ["write"], ["acme/*"], principal="ci-bot"))

    elsewhere = submit(client, sql_formal_recipe(), "other/sql-formal", headers=writer)
    assert elsewhere.status_code == 403, elsewhere.text
    assert "namespace 'other'" in elsewhere.json()["message"]
    foreign_input = sql_formal_recipe(inputs=[{"adapter": "secret/weights@1"}])
    assert submit(client, foreign_input, "acme/x", headers=writer).status_code == 403

    allowed = submit(client, sql_formal_recipe(), "acme/sql-formal", headers=writer)
    assert allowed.status_code == 202, allowed.text
    assert allowed.json()["created_by"] == "ci-bot"
    done = wait_for_job(client, allowed.json()["id"])
    assert done["state"] == "succeeded", done["log"]
    published = client.get(f"{API}/repos/acme/sql-formal/versions/1").json()
    assert published["created_by"] == "ci-bot"
    outsider = bearer(make_token(client, ["write"], ["other/*"], principal="outsider"))
    refused = client.post(f"{API}/jobs/{done['id']}/cancel", headers=outsider)
    assert refused.status_code == 404, "another namespace's job is as absent as a missing one"
    assert refused.json()["code"] == "job_not_found"


def test_a_composition_cannot_move_a_protected_alias_its_submitter_may_not(
    sqlite_client: TestClient, skill_adapters: dict[str, dict[str, bytes]]
) -> None:
    client = sqlite_client
    publish_skills(client, skill_adapters)
    admin = bearer(make_token(client, ["admin"], ["*"], principal="root"))
    rule = client.post(
        f"{API}/policies", json={"repository": "acme/*", "alias": "production"}, headers=admin
    )
    assert rule.status_code == 201, rule.text
    writer = bearer(make_token(client, ["write"], ["acme/*"], principal="ci-bot"))

    body = {"recipe": sql_formal_recipe(), "target": "acme/sql-formal", "alias": "production"}
    refused = client.post(f"{API}/compositions", json=body, headers=writer)
    assert refused.status_code == 403, refused.text
    assert "protected" in refused.json()["message"]
    assert client.get(f"{API}/jobs").json()["total"] == 0

    promoter = bearer(make_token(client, ["write", "promote"], ["acme/*"], principal="rm"))
    accepted = client.post(
        f"{API}/compositions", json={**body, "message": "ship SQL formal"}, headers=promoter
    )
    assert accepted.status_code == 202, accepted.text
    done = wait_for_job(client, accepted.json()["id"])
    assert done["state"] == "succeeded", done["log"]
    assert client.get(f"{API}/repos/acme/sql-formal/aliases/production").json()["version"] == 1


def test_a_worker_runs_its_jobs_on_the_torch_threads_it_is_given(
    client: TestClient,
    skill_adapters: dict[str, dict[str, bytes]],
    settings: Settings,
    tmp_path: Path,
) -> None:
    import torch

    before = torch.get_num_threads()
    settings.torch_threads = 1 if before != 1 else 2
    try:
        publish_skills(client, skill_adapters)
        job = submit(client, sql_formal_recipe(), "acme/sql-formal").json()
        done = wait_for_job(client, job["id"])
        assert done["state"] == "succeeded", (done["error"], done["log"])
        started = [line["message"] for line in done["log"] if line["message"].startswith("started")]
        assert len(started) == 1
        assert started[0].endswith(f", {settings.torch_threads} torch thread(s) (attempt 1)")
        # the bytes do not depend on the count: the local composer runs on `before` threads
        pulled = version_files(client, "acme/sql-formal", str(done["result"]["version"]))
        local = _local_compose(client, done["recipe"], done["inputs"], tmp_path)
        assert pulled == local
    finally:
        torch.set_num_threads(before)
