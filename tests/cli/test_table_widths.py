"""Every table of the CLI stays readable at 80 and 120 columns: key values whole, on one
line; columns that do not fit are left out (and the caption says which), never cut to `…`."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from rich.console import Console, RenderableType

from cli import render
from cli.access_commands import _table as downloads_table
from cli.eval_commands import _compare_table, _history_table, _results_table
from cli.jobs_commands import _derived_table, _jobs_table
from cli.remote_export import _exports_table
from cli.serving_commands import _deliveries_table, _deployments_table, _webhooks_table
from cli.tables import Column, FittedTable

JOB_ID = "3f2a9c0e5b7d41e8a6c4f0b2d9e8a7c1"
DIGEST = "sha256:" + "ab12" * 16
AT = "2026-12-02T21:14:07.123456Z"


def _render(table: RenderableType, width: int) -> str:
    console = Console(width=width, file=StringIO(), record=True, color_system=None)
    console.print(table)
    return console.export_text()


def _audit() -> Any:
    event = {
        "at": AT,
        "actor": "local:alice",
        "action": "alias.set",
        "repository": "acme/sql-gen-formal",
        "target": "production",
        "before": {"version": 3, "digest": DIGEST},
        "after": {"version": 4, "digest": DIGEST, "reason": "eval gate passed"},
    }
    return render.audit_table([event], 1), [
        "2026-12-02 21:14:07",
        "local:alice",
        "alias.set",
        "acme/sql-gen-formal",
    ]


def _jobs() -> Any:
    job = {
        "id": JOB_ID,
        "kind": "compose",
        "state": "succeeded",
        "target": "acme/sql-gen-formal",
        "progress": {"done": 28, "total": 28},
        "result": {"repository": "acme/sql-gen-formal", "version": 4},
        "error": None,
        "created_at": AT,
        "created_by": "release-bot@acme.example",
    }
    return _jobs_table([job], 1), [JOB_ID, "succeeded", "acme/sql-gen-formal"]


def _exports() -> Any:
    listing = {
        "source": {"repository": "acme/sql-gen", "version": 4, "digest": DIGEST},
        "items": [
            {
                "path": "exports/sql-gen-q8_0.gguf",
                "format": "gguf",
                "outtype": "q8_0",
                "size": 123456789,
                "sha256": "ab12" * 16,
                "lineage": {
                    "kind": "adapter",
                    "architecture": "llama",
                    "base": {"repository": "acme/llama-3b", "version": 2},
                },
                "created_at": AT,
                "created_by": "release-bot@acme.example",
                "job": JOB_ID,
            }
        ],
    }
    return _exports_table(listing), ["exports/sql-gen-q8_0.gguf", "q8_0", "123,456,789", "gguf"]


def _downloads() -> Any:
    item = {
        "at": AT,
        "actor": "serving@acme.example",
        "repository": "acme/sql-gen",
        "version": 4,
        "path": "adapter_model.safetensors",
        "revision": "production",
        "via": "hub",
        "address": "10.1.2.3",
        "user_agent": "huggingface_hub/0.30.2; python/3.11.9; torch/2.13.0",
    }
    return downloads_table([item], 1), ["2026-12-02 21:14:07", "serving@acme.example"]


def _repos() -> Any:
    repo = {
        "id": "acme/sql-gen-formal",
        "kind": "adapter",
        "latest_version": 12,
        "aliases": {"production": 11, "staging": 12},
        "base_model": "acme/llama-3b",
        "tags": ["sql", "formal", "tone"],
        "description": "SQL generation in a formal register, composed from two adapters",
    }
    return render.repos_table([repo], 1), ["acme/sql-gen-formal", "12"]


def _versions() -> Any:
    version = {
        "version": 12,
        "digest": DIGEST,
        "aliases": ["production"],
        "size": 54_321_000,
        "downloads": 3,
        "created_at": AT,
        "created_by": "release-bot@acme.example",
        "message": "retrained on the March data",
    }
    return render.versions_table([version], 1), ["12", DIGEST[:19], "51.8 MiB"]


def _aliases() -> Any:
    alias = {
        "name": "production",
        "version": 11,
        "digest": DIGEST,
        "updated_at": AT,
        "updated_by": "release-bot@acme.example",
        "reason": "eval gate passed",
    }
    return render.aliases_table([alias], "acme/sql-gen"), ["production", "11", DIGEST[:19]]


def _history() -> Any:
    event = {
        "at": AT,
        "from_version": 10,
        "to_version": 11,
        "actor": "release-bot@acme.example",
        "reason": "eval gate passed",
        "request_id": "req-" + "9" * 28,
    }
    table = render.alias_history_table([event], "history of acme/sql-gen@production")
    return table, ["2026-12-02 21:14:07", "10", "11", "release-bot@acme.example"]


def _webhooks() -> Any:
    hook = {
        "id": 17,
        "namespace": "acme",
        "repositories": "sql-gen-*",
        "events": ["alias.set", "version.publish", "repository.archive"],
        "url": "https://hooks.acme.example/lorry/events/receive?team=ml-platform",
        "created_at": AT,
    }
    return _webhooks_table([hook]), ["17", "acme/sql-gen-*"]


def _deliveries() -> Any:
    delivery = {
        "id": JOB_ID,
        "event": "version.publish",
        "state": "succeeded",
        "attempts": 3,
        "last_status": 200,
        "created_at": AT,
        "last_error": "connection refused by hooks.acme.example:443 after 10.0 s",
    }
    return _deliveries_table([delivery]), [JOB_ID, "version.publish", "succeeded"]


def _deployments() -> Any:
    target = {
        "id": 4,
        "repository": "acme/sql-gen-formal",
        "alias": "production",
        "kind": "vllm",
        "url": "http://vllm-eu-1.serving.acme.example:8000",
        "lora_name": "sql-gen-formal",
        "alias_version": 12,
        "served_version": 11,
        "served_since": AT,
        "last_error": "load_lora_adapter answered 500: out of memory",
    }
    return _deployments_table([target]), ["acme/sql-gen-formal@production", "12", "11"]


def _eval_results() -> Any:
    page = {
        "repository": "acme/sql-gen-formal",
        "version": 12,
        "items": [
            {
                "task": "hellaswag_multilingual_extended",
                "metric": "acc_norm",
                "filter": "strict-match",
                "value": 0.61234,
                "stderr": 0.0049,
                "n_shot": 5,
                "source": "harness",
                "id": 1203,
            }
        ],
    }
    return _results_table(page), ["hellaswag_multilingual_extended", "acc_norm", "0.6123"]


def _eval_compare() -> Any:
    comparison = {
        "repository": "acme/sql-gen-formal",
        "base": 11,
        "candidate": 12,
        "rows": [
            {
                "task": "hellaswag_multilingual_extended",
                "metric": "acc_norm",
                "filter": "strict-match",
                "base": 0.5934,
                "candidate": 0.61234,
                "difference": 0.01894,
                "improved": True,
                "significant": True,
            }
        ],
    }
    return _compare_table(comparison), [
        "hellaswag_multilingual_extended",
        "acc_norm",
        "0.5934",
        "0.6123",
        "0.01894",
    ]


def _eval_history() -> Any:
    versions = [{"version": n, "aliases": ["production"] if n == 11 else []} for n in range(3, 13)]
    series = {
        "task": "hellaswag_multilingual_extended",
        "metric": "acc_norm",
        "filter": "none",
        "points": [{"version": n, "value": 0.5 + n / 100} for n in range(3, 13)],
    }
    history = {"repository": "acme/sql-gen-formal", "versions": versions, "series": [series]}
    return _history_table(history), ["hellaswag_multilingual_extended/acc_norm", "v12", "0.62"]


def _derived() -> Any:
    page = {
        "source": {"repository": "acme/sql-gen", "version": 4},
        "items": [
            {
                "repository": "acme/sql-gen-formal-polite",
                "version": 12,
                "aliases": ["production", "staging"],
                "via": "acme/sql-gen-formal@3",
                "depth": 2,
                "digest": DIGEST,
            }
        ],
    }
    return _derived_table(page), ["acme/sql-gen-formal-polite@12", "production, staging"]


def _files() -> Any:
    files = [{"path": "adapter_model.safetensors", "size": 54_321_000, "sha256": "ab12" * 16}]
    return render._files_table(files), ["adapter_model.safetensors", "51.8 MiB"]


def _modules() -> Any:
    name = "base_model.model.model.layers.31.self_attn.q_proj"
    modules = {name: {"lora_A": [16, 4096], "lora_B": [4096, 16]}}
    return render._modules_table(modules), [name, "16×4096", "4096×16"]


TABLES = {
    "audit": _audit,
    "jobs": _jobs,
    "exports": _exports,
    "downloads": _downloads,
    "repositories": _repos,
    "versions": _versions,
    "aliases": _aliases,
    "alias history": _history,
    "webhooks": _webhooks,
    "webhook deliveries": _deliveries,
    "deployments": _deployments,
    "eval results": _eval_results,
    "eval compare": _eval_compare,
    "eval history": _eval_history,
    "derived": _derived,
    "files": _files,
    "modules": _modules,
}


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("name", sorted(TABLES))
def test_table_keeps_its_key_values_whole_at_the_width(name: str, width: int) -> None:
    table, key_values = TABLES[name]()
    text = _render(table, width)

    assert max(len(line) for line in text.splitlines()) <= width
    lines = text.splitlines()
    for value in key_values:
        assert any(value in line for line in lines), f"{value!r} is not whole in:\n{text}"


def test_columns_left_out_at_80_are_named_and_shown_at_120() -> None:
    narrow = _render(_jobs()[0], 80)
    wide = _render(_jobs()[0], 120)

    assert "left out at this width: progress, result, created, by" in narrow
    assert "28/28" not in narrow
    assert "28/28" in wide  # the progress, left out at 80
    assert "left out at this width" not in wide


def test_eval_history_leaves_out_the_oldest_versions_first_and_names_them() -> None:
    narrow = _render(_eval_history()[0], 80)

    assert "left out at this width: v3, v4" in narrow
    assert "v12" in narrow and "v11" in narrow and "0.61" in narrow
    assert "left out at this width" not in _render(_eval_history()[0], 200)


def test_a_row_must_have_one_cell_per_column() -> None:
    table = FittedTable("t", [Column("a", key=True), Column("b")])

    with pytest.raises(ValueError, match="1 cells for 2 columns"):
        table.add_row("only one")


def test_key_values_wider_than_the_terminal_fold_instead_of_being_cut() -> None:
    long_name = "acme-research-division/" + "x" * 70
    table = FittedTable("t", [Column("repository", key=True), Column("id", key=True)])
    table.add_row(long_name, JOB_ID)

    text = _render(table, 80)

    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    rows = [line.split("│") for line in text.splitlines() if line.startswith("│")]
    assert "".join(row[1].strip() for row in rows) == long_name
    assert "".join(row[2].strip() for row in rows) == JOB_ID
