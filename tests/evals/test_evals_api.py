"""Recording, reading and comparing results over REST, on both backend pairs."""

from __future__ import annotations

import math

from fastapi.testclient import TestClient
from huggingface_hub import ModelCardData
from sqlalchemy import select

from registry.tables import EvalDocument
from tests.evals.documents import lm_eval_document
from tests.support.rest import API, engine_of, push_ok, row_counts, with_extra

REPO = "acme/sql-gen"
EVALS = f"{API}/repos/{REPO}"


def _two_versions(client: TestClient, files: dict[str, bytes]) -> None:
    push_ok(client, REPO, files)
    push_ok(client, REPO, with_extra(files, "notes.txt", b"v2"))


def test_lm_eval_results_are_stored_whole_bound_to_the_digest_and_audited(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    _two_versions(client, adapter_files)
    document = lm_eval_document()
    added = client.post(f"{EVALS}/versions/2/evals", json=document)
    assert added.status_code == 201, added.text
    body = added.json()
    version = client.get(f"{EVALS}/versions/2").json()
    assert (body["source"], body["version"], body["digest"]) == ("lm-eval", 2, version["digest"])
    assert {(r["task"], r["metric"], r["value"], r["stderr"]) for r in body["results"]} == {
        ("sql_eval", "exact_match", 0.83, 0.0378),
        ("sql_syntax", "acc", 0.9, None),
    }
    listed = client.get(f"{EVALS}/versions/2/evals").json()
    assert [r["id"] for r in listed["items"]] == [r["id"] for r in body["results"]]
    assert client.get(f"{EVALS}/versions/1/evals").json()["items"] == []
    events = client.get(f"{API}/audit", params={"action": "eval.add"}).json()["items"]
    assert len(events) == 1 and events[0]["target"] == f"{REPO}@2"
    assert events[0]["after"]["document"] == body["document_id"]
    with engine_of(client).connect() as connection:
        stored = connection.execute(select(EvalDocument.document)).scalar_one()
    assert stored == document, "the original document is kept as it was sent"


def test_bad_documents_are_refused_naming_the_field_and_change_nothing(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    _two_versions(client, adapter_files)
    before = row_counts(client)
    for content, field in [
        (b'{"sql": {"exact": "0.8x"}}', "sql.exact"),
        (b'{"results": {"t": {"acc,none": NaN}}, "versions": {}}', 'results.t["acc,none"]'),
        (b'{"sql": {"exact": Infinity}}', "sql.exact"),
        (b'{"sql": [1, 2]}', "sql"),
    ]:
        refused = client.post(
            f"{EVALS}/versions/1/evals",
            content=content,
            headers={"content-type": "application/json"},
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "invalid_eval_results", refused.text
        assert field in refused.json()["message"]
    missing = client.post(f"{EVALS}/versions/9/evals", json={"sql": {"exact": 0.8}})
    assert missing.status_code == 404 and missing.json()["code"] == "version_not_found"
    assert row_counts(client) == before


def test_history_and_compare_across_versions(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    _two_versions(client, adapter_files)
    first = {"sql_eval": {"exact_match": 0.70, "exact_match_stderr": 0.02}, "bleu": {"b": 30.0}}
    second = {"sql_eval": {"exact_match": 0.80, "exact_match_stderr": 0.02}, "bleu": {"b": 30.5}}
    for number, document in ((1, first), (2, second)):
        assert client.post(f"{EVALS}/versions/{number}/evals", json=document).status_code == 201
    assert client.put(f"{EVALS}/aliases/production", json={"version": 1}).status_code == 200

    history = client.get(f"{EVALS}/evals").json()
    assert [(v["version"], v["aliases"]) for v in history["versions"]] == [
        (1, ["production"]),
        (2, []),
    ]
    series = {
        s["task"]: [(p["version"], p["value"]) for p in s["points"]] for s in history["series"]
    }
    assert series == {"bleu": [(1, 30.0), (2, 30.5)], "sql_eval": [(1, 0.7), (2, 0.8)]}

    compared = client.get(f"{EVALS}/evals/compare", params={"base": "production", "candidate": 2})
    assert compared.status_code == 200, compared.text
    rows = {r["task"]: r for r in compared.json()["rows"]}
    sql = rows["sql_eval"]
    assert math.isclose(sql["difference"], 0.1)
    assert sql["significant"] is (0.1 > 1.96 * math.sqrt(0.02**2 + 0.02**2))
    assert sql["improved"] is True
    assert rows["bleu"]["significant"] is None, "no stderrs: significance unknown"


def test_results_reach_hub_clients_as_model_index(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    _two_versions(client, adapter_files)
    assert client.post(f"{EVALS}/versions/2/evals", json=lm_eval_document()).status_code == 201
    info = client.get(f"/api/models/{REPO}/revision/2").json()
    card = ModelCardData(**info["cardData"])
    found = {(e.dataset_type, e.metric_type): e.metric_value for e in card.eval_results or []}
    assert found == {("sql_eval", "exact_match"): 0.83, ("sql_syntax", "acc"): 0.9}
    assert "model-index" not in client.get(f"/api/models/{REPO}/revision/1").json()["cardData"]
