"""`lorry eval`, `lorry policy add --require` and `lorry alias set --override-gate`, run as
real `lorry` processes against a live registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from registry.config import Settings
from tests.evals.documents import LM_EVAL_FILE, lm_eval_document
from tests.support.live import LiveServer, start_live_server
from tests.support.rest import push_ok, with_extra

REPO = "acme/sql-gen"


@pytest.fixture
def live(sqlite_settings: Settings) -> Iterator[LiveServer]:
    server = start_live_server(sqlite_settings)
    try:
        yield server
    finally:
        server.stop()


def _lorry(
    live: LiveServer, *args: str | Path, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LORRY_URL": live.url, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode == 0) is ok, done.stdout + done.stderr
    return done


def test_record_show_compare_and_gate_from_the_command_line(
    live: LiveServer, adapter_files: dict[str, bytes], tmp_path: Path
) -> None:
    with httpx.Client(base_url=live.url) as http:
        push_ok(http, REPO, adapter_files)
        push_ok(http, REPO, with_extra(adapter_files, "notes.txt", b"v2"))
    plain = tmp_path / "v1.json"
    plain.write_text(json.dumps({"sql_eval": {"exact_match": 0.7, "exact_match_stderr": 0.01}}))

    added = _lorry(live, "eval", "add", f"{REPO}@1", plain, "--json")
    assert json.loads(added.stdout)["results"][0]["value"] == 0.7
    text = _lorry(live, "eval", "add", f"{REPO}@2", LM_EVAL_FILE).stdout
    assert "recorded 2 results (lm-eval)" in text and f"{REPO}@2" in text

    shown = json.loads(_lorry(live, "eval", "show", f"{REPO}@2", "--json").stdout)
    assert {r["task"] for r in shown["items"]} == {"sql_eval", "sql_syntax"}
    table = _lorry(live, "eval", "show", f"{REPO}@2").stdout
    assert "exact_match" in table and "0.83" in table

    compared = json.loads(
        _lorry(live, "eval", "compare", f"{REPO}@1", f"{REPO}@2", "--json").stdout
    )
    row = next(r for r in compared["rows"] if r["task"] == "sql_eval")
    assert (row["base"], row["candidate"], row["significant"]) == (0.7, 0.83, True)
    assert "sql_eval" in _lorry(live, "eval", "compare", f"{REPO}@1", f"{REPO}@2").stdout

    _lorry(
        live,
        "policy",
        "add",
        "acme/*",
        "production",
        "--require",
        "sql_eval/exact_match >= 0.80",
        "--require-no-regression",
        "sql_eval/exact_match",
    )
    refused = _lorry(live, "alias", "set", REPO, "production", "1", "--reason", "r", ok=False)
    assert "sql_eval/exact_match >= 0.8" in refused.stderr + refused.stdout
    assert "version 1 has 0.7" in refused.stderr + refused.stdout
    moved = _lorry(live, "alias", "set", REPO, "production", "2", "--reason", "passes")
    assert "→ 2" in moved.stdout
    overridden = _lorry(
        live,
        "alias",
        "set",
        REPO,
        "production",
        "1",
        "--override-gate",
        "--reason",
        "rollback INC-1",
        "--json",
    )
    assert json.loads(overridden.stdout)["version"] == 1
    with pytest.raises(HfHubHTTPError) as refused_commit:
        HfApi(endpoint=live.url, token=False).upload_file(
            path_or_fileobj=b"unmeasured",
            path_in_repo="notes.txt",
            repo_id=REPO,
            revision="production",
        )
    assert refused_commit.value.response.status_code == 403
    assert "no result" in refused_commit.value.response.text
    history = _lorry(live, "eval", "show", REPO).stdout
    assert "v1 (production)" in history and "sql_eval/exact_match" in history


def test_huggingface_hub_reads_the_results_as_eval_results(
    live: LiveServer, adapter_files: dict[str, bytes]
) -> None:
    with httpx.Client(base_url=live.url) as http:
        push_ok(http, REPO, adapter_files)
        added = http.post(f"/api/v1/repos/{REPO}/versions/1/evals", json=lm_eval_document())
        assert added.status_code == 201, added.text
    info = HfApi(endpoint=live.url, token=False).model_info(REPO, revision="1")
    assert info.card_data is not None
    found = {
        (e.dataset_type, e.metric_type, e.metric_value) for e in info.card_data.eval_results or []
    }
    assert found == {("sql_eval", "exact_match", 0.83), ("sql_syntax", "acc", 0.9)}
