"""Merged GGUF exports built by the registry: an adapter version merged into a base model
version (``merge_into``), stored as an export of the adapter version with its lineage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from composer.export import export_gguf
from tests.export.deltas import expected_in_gguf_layout, peft_deltas
from tests.export.exports_api import export_ok, exports_url, submit
from tests.export.reading import tensors
from tests.support.files import directory_files
from tests.support.llama_cpp import load_llama_cpp
from tests.support.rest import API, push_ok, row_counts, wait_for_job
from tests.support.tokens import bearer, make_token

ADAPTER = "acme/sql-formal"
BASE = "acme/llama"
PROMPT_IDS = [0, 17, 40, 99, 120, 201, 7, 55]


def publish(client: TestClient, base_dir: Path, adapter_dir: Path) -> tuple[str, str]:
    """The base model (alias production) and the adapter (alias production); their digests."""
    base = push_ok(client, BASE, directory_files(base_dir), kind="model", alias="production")
    adapter = push_ok(client, ADAPTER, directory_files(adapter_dir), alias="production")
    return str(base["digest"]), str(adapter["digest"])


def download(client: TestClient, repository: str, ref: str | int, path: str) -> bytes:
    response = client.get(f"{API}/repos/{repository}/versions/{ref}/files/{path}")
    assert response.status_code == 200, response.text
    return response.content


def hex_of(digest: str) -> str:
    return digest.removeprefix("sha256:")


@pytest.mark.parametrize("outtype", ["f16", "q4_k_m"])
def test_a_merged_export_is_byte_for_byte_the_local_merge(
    client: TestClient, wide_llama: Path, wide_adapter: Path, tmp_path: Path, outtype: str
) -> None:
    base_digest, adapter_digest = publish(client, wide_llama, wide_adapter)
    path = f"merged-llama-{hex_of(base_digest)[:12]}-{outtype}.gguf"

    response = submit(
        client, ADAPTER, "production", merge_into=f"{BASE}@production", outtype=outtype
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["export"] == {
        "format": "gguf",
        "outtype": outtype,
        "path": path,
        "base": None,
        "merge_into": f"{BASE}@{base_digest}",
        "sha256": None,
        "size": None,
    }
    assert [(i["repository"], i["version"], i["digest"], i["role"]) for i in job["inputs"]] == [
        (ADAPTER, 1, adapter_digest, "input"),
        (BASE, 1, base_digest, "base"),
    ]
    done = wait_for_job(client, job["id"])
    assert done["state"] == "succeeded", (done["error"], done["log"])
    built = download(client, ADAPTER, "production", path)
    assert hashlib.sha256(built).hexdigest() == done["export"]["sha256"]

    # what `lorry export gguf ... --merge-into ... --local` writes from the same versions
    local = export_gguf(
        wide_adapter,
        tmp_path / "local.gguf",
        merge_into=wide_llama,
        outtype=outtype,
        name=f"{ADAPTER}@1",
    )
    assert built == local.out.read_bytes()

    if outtype == "f16":
        # the merge itself: each adapted weight is base + B @ A (PEFT's delta), in f16
        merged_file = tmp_path / "registry.gguf"
        merged_file.write_bytes(built)
        merged = tensors(merged_file)
        base = tensors(export_gguf(wide_llama, tmp_path / "base.gguf", outtype="f32").out)
        deltas = peft_deltas(wide_llama, wide_adapter)
        assert len(deltas) == 14
        for name, delta in deltas.items():
            expected = base[f"{name}.weight"][1] + expected_in_gguf_layout(name, delta)
            got = merged[f"{name}.weight"][1]
            np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3, err_msg=name)
            assert np.abs(got - base[f"{name}.weight"][1]).max() > 1e-2, name


def test_a_merged_export_records_its_lineage_and_answers_the_same_request_once(
    client: TestClient, wide_llama: Path, wide_adapter: Path
) -> None:
    base_digest, adapter_digest = publish(client, wide_llama, wide_adapter)
    first = export_ok(client, ADAPTER, "production", merge_into=BASE, outtype="q4_k_m")
    path = first["export"]["path"]
    assert path == f"merged-llama-{hex_of(base_digest)[:12]}-q4_k_m.gguf"

    export = client.get(f"{exports_url(ADAPTER, 1)}/{path}").json()
    assert (export["repository"], export["version"], export["outtype"]) == (ADAPTER, 1, "q4_k_m")
    assert export["merged_into"] == {"repository": BASE, "version": 1, "digest": base_digest}
    lineage = export["lineage"]
    assert lineage["exported_from"] == {
        "repository": ADAPTER,
        "version": 1,
        "digest": adapter_digest,
    }
    assert lineage["base"] == {"repository": BASE, "version": 1, "digest": base_digest}
    assert lineage["merged"] is True and lineage["job"] == first["id"]
    assert (lineage["kind"], lineage["architecture"], lineage["outtype"]) == (
        "model",
        "llama",
        "q4_k_m",
    )
    libraries = lineage["libraries"]
    assert {"lorry", "gguf", "torch", "numpy"} <= set(libraries)
    assert all(libraries[name] != "unknown" for name in ("gguf", "torch", "numpy"))
    assert export["sha256"] == first["export"]["sha256"]

    # listed with the adapter version, and with the base version it was merged into
    [listed] = client.get(exports_url(ADAPTER, "production")).json()["items"]
    assert listed == export
    of_base = client.get(exports_url(BASE, 1)).json()
    assert of_base["items"] == [] and of_base["merged_into_this"] == [export]
    missing = client.get(f"{exports_url(ADAPTER, 1)}/merged-nothing.gguf")
    assert missing.status_code == 404 and missing.json()["code"] == "file_not_found"

    # the same request again: the same job and export, nothing new
    before = row_counts(client)
    again = submit(client, ADAPTER, 1, merge_into=f"{BASE}@1", outtype="q4_k_m")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"] and again.json()["reused"] is True
    assert row_counts(client) == before

    # the base's alias moves to a new version: a new merge, the first one unchanged
    files = directory_files(wide_llama)
    files["README.md"] = b"# llama, with a model card\n"
    moved = push_ok(client, BASE, files, kind="model", alias="production")
    second = export_ok(
        client, ADAPTER, "production", merge_into=f"{BASE}@production", outtype="q4_k_m"
    )
    assert second["id"] != first["id"]
    assert second["export"]["merge_into"] == f"{BASE}@{moved['digest']}"
    assert second["export"]["path"] == f"merged-llama-{hex_of(moved['digest'])[:12]}-q4_k_m.gguf"
    items = client.get(exports_url(ADAPTER, 1)).json()["items"]
    assert sorted((item["path"], item["merged_into"]["version"]) for item in items) == sorted(
        [(path, 1), (second["export"]["path"], 2)]
    )
    assert [e["job"] for e in client.get(exports_url(BASE, 1)).json()["merged_into_this"]] == [
        first["id"]
    ]
    assert [e["job"] for e in client.get(exports_url(BASE, 2)).json()["merged_into_this"]] == [
        second["id"]
    ]
    events = client.get(f"{API}/audit", params={"action": "version.export"}).json()["items"]
    assert {event["after"]["merge_into"] for event in events} == {
        f"{BASE}@{base_digest}",
        f"{BASE}@{moved['digest']}",
    }


def test_refused_merged_exports_change_nothing(
    sqlite_client: TestClient,
    wide_llama: Path,
    wide_adapter: Path,
    llama_with_tokenizer: Path,
) -> None:
    client = sqlite_client
    publish(client, wide_llama, wide_adapter)
    push_ok(client, "acme/narrow", directory_files(llama_with_tokenizer), kind="model")
    files = directory_files(wide_llama)
    config = json.loads(files["config.json"])
    config["architectures"] = ["GPTNeoXForCausalLM"]
    files["config.json"] = json.dumps(config).encode()
    push_ok(client, "acme/neox", files, kind="model")
    push_ok(client, "other/llama", directory_files(wide_llama), kind="model")
    before = row_counts(client)

    cases: list[tuple[str, dict[str, Any], int, str, str]] = [
        (ADAPTER, {"merge_into": ADAPTER}, 422, "invalid_input", "must be a model repository"),
        (ADAPTER, {"merge_into": "acme/nothing"}, 404, "repository_not_found", "acme/nothing"),
        (ADAPTER, {"merge_into": f"{BASE}@9"}, 404, "version_not_found", "no version 9"),
        (ADAPTER, {"merge_into": "not a ref"}, 422, "invalid_reference", "NAMESPACE/NAME"),
        (ADAPTER, {"merge_into": "acme/narrow"}, 422, "incompatible_inputs", "base weight is"),
        (ADAPTER, {"merge_into": "acme/neox"}, 422, "unsupported_architecture", "GPTNeoX"),
        (ADAPTER, {"merge_into": BASE, "outtype": "q3_k"}, 422, "invalid_input", "q4_k_m"),
        (ADAPTER, {"merge_into": BASE, "base": BASE}, 422, "invalid_input", "leave base out"),
        (BASE, {"merge_into": BASE}, 422, "invalid_input", "holds models"),
    ]
    for repository, body, status, code, words in cases:
        response = submit(client, repository, 1, **body)
        where = f"{repository} {body}: {response.status_code} {response.text}"
        assert response.status_code == status, where
        assert response.json()["code"] == code, where
        assert words in response.json()["message"], where

    # a token for acme/* cannot merge into another namespace's model, and cannot tell
    # whether it exists: the same refusal for a real base and a missing one
    assert row_counts(client) == before
    scoped = bearer(make_token(client, ["write"], ["acme/*"], principal="acme-bot"))
    before = row_counts(client)
    answers = []
    for merge_into in ("other/llama", "other/missing"):
        body = {"format": "gguf", "merge_into": merge_into}
        response = client.post(exports_url(ADAPTER, 1), json=body, headers=scoped)
        assert response.status_code == 403, response.text
        answers.append(response.json()["message"].replace(merge_into, "X"))
    assert answers[0] == answers[1] and "namespace 'other'" in answers[0]
    assert row_counts(client) == before
    assert client.get(exports_url(ADAPTER, 1)).json()["items"] == []


def test_a_model_lists_merges_into_it_only_from_namespaces_the_caller_reads(
    sqlite_client: TestClient, wide_llama: Path, wide_adapter: Path
) -> None:
    client = sqlite_client
    publish(client, wide_llama, wide_adapter)
    push_ok(client, "other/tone", directory_files(wide_adapter))
    ours = export_ok(client, ADAPTER, 1, merge_into=BASE, outtype="q8_0")
    theirs = export_ok(client, "other/tone", 1, merge_into=BASE, outtype="q8_0")

    everyone = client.get(exports_url(BASE, 1)).json()["merged_into_this"]
    assert [(e["repository"], e["job"]) for e in everyone] == [
        (ADAPTER, ours["id"]),
        ("other/tone", theirs["id"]),
    ]
    reader = bearer(make_token(client, ["read"], ["acme/*"], principal="acme-reader"))
    seen = client.get(exports_url(BASE, 1), headers=reader)
    assert seen.status_code == 200, seen.text
    assert [e["repository"] for e in seen.json()["merged_into_this"]] == [ADAPTER]
    assert "other" not in json.dumps(seen.json())
    path = theirs["export"]["path"]
    refused = client.get(f"{exports_url('other/tone', 1)}/{path}", headers=reader)
    assert refused.status_code in (403, 404), refused.text
    assert theirs["id"] not in refused.text


def test_llama_cpp_loads_the_registry_made_q4_k_m(
    sqlite_client: TestClient, wide_llama: Path, wide_adapter: Path, tmp_path: Path
) -> None:
    llama_cpp = load_llama_cpp()
    client = sqlite_client
    publish(client, wide_llama, wide_adapter)
    logits = {}
    for outtype in ("f16", "q4_k_m"):
        job = export_ok(client, ADAPTER, 1, merge_into=BASE, outtype=outtype)
        model = tmp_path / f"{outtype}.gguf"
        model.write_bytes(download(client, ADAPTER, 1, job["export"]["path"]))
        llm = llama_cpp.Llama(
            model_path=str(model), n_ctx=64, n_threads=1, verbose=False, logits_all=True
        )
        assert llm.n_vocab() == 384
        llm.eval(PROMPT_IDS)
        logits[outtype] = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        llm.close()
    assert np.isfinite(logits["q4_k_m"]).all()
    correlation = float(np.corrcoef(logits["f16"], logits["q4_k_m"])[0, 1])
    print(f"\nq4_k_m vs f16 logits of the merged model: correlation {correlation:.4f}")
    assert correlation > 0.9
