"""Evaluation gates on protected aliases: every path that moves an alias is gated alike."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.support.rest import API, push, push_ok, row_counts, with_extra

REPO = "acme/sql-gen"
URL = f"{API}/repos/{REPO}"
RULE = {
    "repository": "acme/*",
    "alias": "production",
    "requirements": ["sql_eval/exact_match >= 0.80"],
    "no_regression": ["sql_eval/exact_match"],
}


def _record(client: TestClient, version: int, value: float, **headers: str) -> int:
    added = client.post(
        f"{URL}/versions/{version}/evals",
        json={"sql_eval": {"exact_match": value}},
        headers=headers,
    )
    assert added.status_code == 201, added.text
    result_id: int = added.json()["results"][0]["id"]
    return result_id


def _move(client: TestClient, version: int, **extra: object) -> object:
    return client.put(
        f"{URL}/aliases/production", json={"version": version, "reason": "CAB-7", **extra}
    )


def test_a_gate_refuses_missing_failing_and_regressing_evidence_and_allows_passing(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    for extra in (b"1", b"2", b"3", b"4"):
        push_ok(client, REPO, with_extra(adapter_files, "notes.txt", extra))
    rule = client.post(f"{API}/policies", json=RULE)
    assert rule.status_code == 201, rule.text
    assert rule.json()["requirements"] == ["sql_eval/exact_match >= 0.8"]
    rule_name = f"rule {rule.json()['id']} (acme/* @ production)"

    before = row_counts(client)
    refused = _move(client, 1)
    assert refused.status_code == 403, refused.text  # type: ignore[attr-defined]
    body = refused.json()  # type: ignore[attr-defined]
    assert body["code"] == "evidence_required"
    for part in (rule_name, "sql_eval/exact_match >= 0.8", "version 1 has no result"):
        assert part in body["message"]
    assert row_counts(client) == before, "a refusal changes nothing"

    _record(client, 1, 0.71)
    before = row_counts(client)
    failing = _move(client, 1).json()  # type: ignore[attr-defined]
    assert "version 1 has 0.71" in failing["message"] and "0.8" in failing["message"]
    assert row_counts(client) == before

    first = _record(client, 2, 0.85)
    moved = _move(client, 2)
    assert moved.status_code == 200, moved.text  # type: ignore[attr-defined]
    _record(client, 3, 0.82)
    before = row_counts(client)
    regress = _move(client, 3).json()  # type: ignore[attr-defined]
    assert regress["code"] == "evidence_required"
    assert "no regression of sql_eval/exact_match against version 2" in regress["message"]
    assert "0.85" in regress["message"] and "version 3 has 0.82" in regress["message"]
    assert row_counts(client) == before

    better = _record(client, 4, 0.9)
    assert _move(client, 4).status_code == 200  # type: ignore[attr-defined]
    events = client.get(
        f"{API}/audit", params={"action": "alias.set", "target": f"{REPO}@production"}
    ).json()["items"]
    evidence = events[0]["after"]["evidence"]
    assert {(e["check"], e["result"], e["value"]) for e in evidence} == {
        ("sql_eval/exact_match >= 0.8", better, 0.9),
        ("no regression of sql_eval/exact_match", better, 0.9),
    }
    baseline = next(e["baseline"] for e in evidence if e.get("baseline"))
    assert baseline == {"version": 2, "result": first, "value": 0.85}


def test_push_and_hub_paths_are_gated_and_a_card_can_carry_the_evidence(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, REPO, adapter_files)
    assert (
        client.post(
            f"{API}/policies", json={**RULE, "no_regression": [], "require_reason": False}
        ).status_code
        == 201
    )
    before = row_counts(client)
    refused = push(client, REPO, with_extra(adapter_files, "x.txt", b"2"), alias="production")
    assert refused.status_code == 403 and "no result" in refused.json()["message"]
    branch = client.post(f"/api/models/{REPO}/branch/production", json={"startingPoint": "1"})
    assert branch.status_code == 403, branch.text
    assert row_counts(client) == before, "a refused push leaves no version behind"

    card = (
        "---\nlibrary_name: peft\nmodel-index:\n- name: sql-gen\n  results:\n"
        "  - task: {type: text-generation}\n    dataset: {type: sql_eval, name: SQL eval}\n"
        "    metrics:\n    - {type: exact_match, value: 0.86}\n"
        "    - {type: bleu, value: '20.0 ± 1.2'}\n---\n# sql-gen\n"
    )
    files = with_extra(adapter_files, "README.md", card.encode())
    pushed = push_ok(client, REPO, files, alias="production", message="carded")
    assert pushed["version"] == 2
    results = client.get(f"{URL}/versions/2/evals").json()["items"]
    assert [(r["task"], r["metric"], r["value"], r["source"]) for r in results] == [
        ("sql_eval", "exact_match", 0.86, "model-index")
    ]
    assert client.get(f"{URL}/aliases/production").json()["version"] == 2

    eval_file = b"- dataset: {id: sql_eval, task_id: exact_match}\n  value: 0.9\n"
    hub_files = with_extra(adapter_files, ".eval_results/sql.yaml", eval_file)
    third = push_ok(client, REPO, hub_files)
    moved = client.put(
        f"{URL}/aliases/production", json={"version": third["version"], "reason": "ok"}
    )
    assert moved.status_code == 200, moved.text
    broken = with_extra(
        adapter_files, ".eval_results/bad.yaml", b"- dataset: {id: x}\n  value: hi\n"
    )
    refused = push(client, REPO, broken)
    assert refused.status_code == 422 and ".eval_results/bad.yaml[0].value" in refused.text


def test_an_admin_may_override_with_a_reason_and_it_is_audited(
    sqlite_client: TestClient,
    adapter_files: dict[str, bytes],
    token_factory: Callable[..., dict[str, str]],
) -> None:
    client = sqlite_client
    push_ok(client, REPO, adapter_files)
    admin = token_factory(["admin"], principal="root")
    promoter = token_factory(["promote"], ["acme/*"], principal="release-manager")
    assert client.post(f"{API}/policies", json=RULE, headers=admin).status_code == 201
    url = f"{URL}/aliases/production"
    before = row_counts(client)
    denied = client.put(
        url, json={"version": 1, "reason": "hotfix", "override_gate": True}, headers=promoter
    )
    assert denied.status_code == 403 and "admin scope" in denied.json()["message"]
    no_reason = client.put(url, json={"version": 1, "override_gate": True}, headers=admin)
    assert no_reason.status_code == 403 and "reason" in no_reason.json()["message"]
    assert row_counts(client) == before

    done = client.put(
        url, json={"version": 1, "reason": "hotfix INC-9", "override_gate": True}, headers=admin
    )
    assert done.status_code == 200, done.text
    audit = client.get(f"{API}/audit", params={"action": "alias.gate_override"}, headers=admin)
    (event,) = audit.json()["items"]
    assert event["actor"] == "root" and event["after"]["reason"] == "hotfix INC-9"
    assert "no result" in event["after"]["failures"][0]
    moved = client.get(f"{API}/audit", params={"action": "alias.set"}, headers=admin).json()[
        "items"
    ][0]
    assert moved["after"]["override"] is True


def test_a_composition_to_a_gated_alias_is_refused_at_submit(
    sqlite_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(sqlite_client, REPO, adapter_files)
    assert sqlite_client.post(f"{API}/policies", json=RULE).status_code == 201
    recipe = {
        "method": "linear",
        "inputs": [{"adapter": f"{REPO}@1", "weight": 1.0}],
        "output": {"type": "adapter", "rank": 8},
    }
    before = row_counts(sqlite_client)
    response = sqlite_client.post(
        f"{API}/compositions",
        json={"recipe": recipe, "target": "acme/mix", "alias": "production", "message": "m"},
    )
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "evidence_required"
    assert row_counts(sqlite_client) == before


def test_malformed_requirements_are_refused(sqlite_client: TestClient) -> None:
    for bad in (["sql_eval >= 0.8"], ["sql_eval/exact_match => 0.8"], ["a/b >= nan"]):
        response = sqlite_client.post(f"{API}/policies", json={**RULE, "requirements": bad})
        assert response.status_code == 422, response.text
        assert "requirements[0]" in response.json()["message"]
