"""The parsers: lm-evaluation-harness output, plain documents, model-index, .eval_results."""

from __future__ import annotations

import math

import pytest
from huggingface_hub import ModelCardData

from registry.errors import InvalidEvalResults
from registry.validation.eval_results import (
    LM_EVAL,
    PLAIN,
    model_index,
    parse_as,
    parse_document,
    parse_eval_results,
    parse_model_index,
)
from tests.evals.documents import lm_eval_document


def test_lm_eval_results_become_one_result_per_metric_and_filter() -> None:
    parsed = parse_document(lm_eval_document())
    assert parsed.source == LM_EVAL
    by_task = {r.task: r for r in parsed.results}
    assert set(by_task) == {"sql_eval", "sql_syntax"}
    sql = by_task["sql_eval"]
    assert (sql.metric, sql.filter, sql.value, sql.stderr) == ("exact_match", "none", 0.83, 0.0378)
    assert (sql.n_shot, sql.higher_is_better, sql.split) == (0, True, "test")
    assert by_task["sql_syntax"].stderr is None, "lm-eval writes N/A without a stderr"


def test_lm_eval_groups_and_filters() -> None:
    document = lm_eval_document()
    document["results"]["gsm8k"] = {
        "alias": "gsm8k",
        "exact_match,strict-match": 0.25,
        "exact_match_stderr,strict-match": 0.01,
        "exact_match,flexible-extract": 0.3,
        "exact_match_stderr,flexible-extract": 0.02,
    }
    document["groups"] = {"sql": {"alias": "sql", "exact_match,none": 0.8, "sample_count": {}}}
    found = {(r.task, r.metric, r.filter): r.value for r in parse_document(document).results}
    assert found[("gsm8k", "exact_match", "strict-match")] == 0.25
    assert found[("gsm8k", "exact_match", "flexible-extract")] == 0.3
    assert found[("sql", "exact_match", "none")] == 0.8


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"results": {"t": {"acc,none": math.nan}}, "versions": {}}, 'results.t["acc,none"]'),
        ({"results": {"t": {"acc,none": "high"}}, "versions": {}}, 'results.t["acc,none"]'),
        (
            {"results": {"t": {"acc,none": 0.5, "acc_stderr,none": -1}}, "versions": {}},
            'results.t["acc_stderr,none"]',
        ),
        ({"results": {"t": []}, "versions": {}}, "results.t"),
        ({"results": {"t": {"alias": "t"}}, "versions": {}}, "results"),
        ({"sql": {"exact": math.inf}}, "sql.exact"),
        ({"sql": 0.5}, "sql"),
        ({"sql": {"exact": True}}, "sql.exact"),
        ({"sql": {"exact_stderr": 0.1}}, "sql.exact_stderr"),
        ({"sql": {"exact": {"value": 1, "colour": "red"}}}, "sql.exact"),
        ({}, "document"),
        ([{"dataset": {"id": "x"}, "value": "n/a"}], "document[0].value"),
    ],
)
def test_bad_documents_name_the_field(document: object, field: str) -> None:
    with pytest.raises(InvalidEvalResults) as caught:
        parse_document(document)
    assert caught.value.details["field"] == field
    assert field in caught.value.message


def test_plain_documents_take_shared_and_per_task_details() -> None:
    parsed = parse_document(
        {
            "dataset": "acme/sql-holdout",
            "split": "test",
            "notes": "nightly",
            "sql_eval": {"exact_match": 0.8, "exact_match_stderr": 0.02, "revision": "r2"},
            "latency": {"p50_ms": {"value": 120.0, "higher_is_better": False}, "n_shot": 3},
        }
    )
    assert parsed.source == PLAIN
    sql, latency = parsed.results
    assert (sql.dataset, sql.split, sql.revision, sql.stderr) == (
        "acme/sql-holdout",
        "test",
        "r2",
        0.02,
    )
    assert (latency.higher_is_better, latency.n_shot, latency.notes) == (False, 3, "nightly")


def test_model_index_round_trips_through_huggingface_hub() -> None:
    results = parse_document(lm_eval_document()).results
    index = model_index("sql-gen", results)
    card = ModelCardData(model_name="sql-gen", eval_results=None, **{"model-index": index})
    read = {(e.dataset_type, e.metric_type): e.metric_value for e in card.eval_results or []}
    assert read == {("sql_eval", "exact_match"): 0.83, ("sql_syntax", "acc"): 0.9}
    again = parse_model_index({"model-index": index}).results
    assert sorted(again, key=str) == sorted(results, key=str)


def test_model_index_skips_values_that_are_not_numbers() -> None:
    card = {
        "model-index": [
            {
                "name": "m",
                "results": [
                    {
                        "task": {"type": "text-generation"},
                        "dataset": {"type": "spider", "name": "Spider"},
                        "metrics": [
                            {"type": "exact_match", "value": 0.7},
                            {"type": "bleu", "value": "20.0 ± 1.2"},
                        ],
                    }
                ],
            }
        ]
    }
    parsed = parse_model_index(card)
    assert [(r.task, r.metric, r.value, r.dataset) for r in parsed.results] == [
        ("spider", "exact_match", 0.7, "Spider")
    ]
    assert "bleu" not in str(parsed.results) and "is not a number" in parsed.skipped[0]
    with pytest.raises(InvalidEvalResults, match=r"model-index\[0\].results\[0\].metrics"):
        parse_model_index({"model-index": [{"results": [{"dataset": {"type": "x"}}]}]})


def test_eval_results_files() -> None:
    parsed = parse_eval_results(
        [{"dataset": {"id": "cais/hle", "task_id": "default"}, "value": 20.9, "notes": "tools"}],
        ".eval_results/hle.yaml",
    )
    (result,) = parsed.results
    assert (result.task, result.metric, result.value, result.notes) == (
        "cais/hle",
        "default",
        20.9,
        "tools",
    )


def test_a_named_source_is_read_with_its_parser() -> None:
    assert parse_as(lm_eval_document(), LM_EVAL).source == LM_EVAL
    with pytest.raises(InvalidEvalResults, match="results"):
        parse_as({"sql": {"exact": 0.5}}, LM_EVAL)
    with pytest.raises(ValueError, match="unknown evaluation source"):
        parse_as({}, "spreadsheet")
