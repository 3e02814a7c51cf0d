"""GGUF exports built by the registry: jobs, derived files, downloads, lineage, refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from safetensors.numpy import load_file

from registry.config import Settings
from tests.export.deltas import expected_in_gguf_layout, gguf_deltas, peft_deltas
from tests.export.exports_api import (
    ADAPTER,
    MODEL,
    export_ok,
    exports_url,
    publish_model_and_adapter,
    submit,
)
from tests.export.reading import metadata, tensors
from tests.support.factories import TINY_LLAMA
from tests.support.files import directory_files
from tests.support.rest import API, push_ok, row_counts, wait_for_job


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_an_adapter_export_is_a_derived_file_of_the_version(
    client: TestClient,
    llama_with_tokenizer: Path,
    tiny_llama_dir: Path,
    lora_adapter_dir: Path,
    tmp_path: Path,
) -> None:
    publish_model_and_adapter(client, llama_with_tokenizer, lora_adapter_dir)
    before = client.get(f"{API}/repos/{ADAPTER}/versions/1").json()

    response = submit(client, ADAPTER, "production", base=f"{MODEL}@1")
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["kind"] == "export" and job["target"] == ADAPTER
    assert job["export"] == {
        "format": "gguf",
        "outtype": "f32",
        "path": "adapter.gguf",
        "base": f"{MODEL}@{before_model_digest(client)}",
        "merge_into": None,
        "sha256": None,
        "size": None,
    }
    assert [(i["repository"], i["version"], i["role"]) for i in job["inputs"]] == [
        (ADAPTER, 1, "input"),
        (MODEL, 1, "base"),
    ]
    done = wait_for_job(client, job["id"])
    assert done["state"] == "succeeded", (done["error"], done["log"])
    assert done["progress"]["done"] == done["progress"]["total"] == 8
    assert done["result"] == {"repository": ADAPTER, "version": 1, "digest": before["digest"]}

    listing = client.get(exports_url(ADAPTER, 1)).json()
    assert listing["source"] == {"repository": ADAPTER, "version": 1, "digest": before["digest"]}
    [export] = listing["items"]
    assert (export["path"], export["format"], export["outtype"]) == ("adapter.gguf", "gguf", "f32")
    assert export["job"] == job["id"]
    assert (done["export"]["sha256"], done["export"]["size"]) == (export["sha256"], export["size"])
    lineage = export["lineage"]
    assert lineage["exported_from"] == {
        "repository": ADAPTER,
        "version": 1,
        "digest": before["digest"],
    }
    assert (lineage["base"]["repository"], lineage["base"]["version"]) == (MODEL, 1)
    assert (lineage["kind"], lineage["architecture"], lineage["tensors"]) == ("adapter", "llama", 8)
    assert {"gguf", "lorry"} <= set(lineage["libraries"])

    # the version itself is unchanged: same manifest, same digest
    after = client.get(f"{API}/repos/{ADAPTER}/versions/1").json()
    assert (after["digest"], after["files"]) == (before["digest"], before["files"])

    # the native download route serves it by path, under any reference of the version
    for ref in ("1", "production", before["digest"]):
        file = client.get(f"{API}/repos/{ADAPTER}/versions/{ref}/files/adapter.gguf")
        assert file.status_code == 200, file.text
        assert hashlib.sha256(file.content).hexdigest() == export["sha256"]
        assert file.headers["etag"] == f'"{export["sha256"]}"'
        assert file.headers["x-lorry-digest"] == before["digest"]
    gguf = write(tmp_path, "adapter.gguf", file.content)

    meta = metadata(gguf)
    assert (meta["general.type"], meta["adapter.type"]) == ("adapter", "lora")
    assert meta["general.architecture"] == "llama"
    assert meta["adapter.lora.alpha"] == pytest.approx(16.0)
    assert meta["general.name"] == f"{ADAPTER}@1"
    expected = peft_deltas(tiny_llama_dir, lora_adapter_dir)
    exported = gguf_deltas(gguf)
    assert set(exported) == {f"blk.{n}.{m}" for n in range(2) for m in ("attn_q", "attn_v")}
    for name, delta in exported.items():
        np.testing.assert_allclose(
            delta, expected_in_gguf_layout(name, expected[name]), rtol=1e-5, atol=1e-6
        )

    # the Hugging Face view serves it by name, but does not list it (snapshots leave it out)
    info = client.get(f"/api/models/{ADAPTER}/revision/production").json()
    siblings = {s["rfilename"] for s in info["siblings"]}
    assert siblings == {f["path"] for f in before["files"]}
    assert info["sha"] == before["commit"]
    head = client.head(f"/{ADAPTER}/resolve/production/adapter.gguf")
    assert head.headers["x-linked-etag"] == f'"{export["sha256"]}"'

    actions = [
        event["action"]
        for event in client.get(f"{API}/audit", params={"repository": ADAPTER}).json()["items"]
    ]
    assert {"export.submit", "version.export", "export.succeed"} <= set(actions)
    derived = client.get(f"{API}/repos/{ADAPTER}/versions/1/derived").json()
    assert [item["path"] for item in derived["exports"]] == ["adapter.gguf"]

    # the same request again: the existing export answers, nothing is recomputed
    again = submit(client, ADAPTER, 1, base=f"{MODEL}@latest", outtype="f32")
    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["reused"]) == (job["id"], True)
    assert again.json()["export"]["sha256"] == export["sha256"]
    assert client.get(f"{API}/jobs", params={"repository": ADAPTER}).json()["total"] == 1
    exports = client.get(f"{API}/jobs", params={"kind": "export"}).json()["items"]
    assert [item["id"] for item in exports] == [job["id"]]
    assert client.get(f"{API}/jobs", params={"kind": "compose"}).json()["total"] == 0
    unknown = client.get(f"{API}/jobs", params={"kind": "train"})
    assert unknown.status_code == 422 and "compose" in unknown.text

    # garbage collection keeps the export's blob
    gc = client.post(f"{API}/gc", params={"grace_minutes": 0})
    assert gc.status_code == 200, gc.text
    assert export["sha256"] not in gc.json()["deleted"]
    assert client.head(f"{API}/blobs/sha256/{export['sha256']}").status_code == 200
    assert client.get(f"{API}/repos/{ADAPTER}/versions/1/files/adapter.gguf").status_code == 200


def before_model_digest(client: TestClient) -> str:
    return str(client.get(f"{API}/repos/{MODEL}/versions/1").json()["digest"])


@pytest.mark.parametrize(
    ("outtype", "path", "file_type", "matrix_type", "tolerance"),
    [
        ("f16", "model.gguf", 1, "F16", 1e-3),
        ("q8_0", "model-q8_0.gguf", 7, "Q8_0", 1e-2),
        # Q4_K_M of the 64-wide tiny model: Q4_K rows are not whole 256-blocks -> Q5_0
        ("q4_k_m", "model-q4_k_m.gguf", 15, "Q5_0", 1e-2),
    ],
)
def test_a_model_exports_with_its_tokenizer_in_each_outtype(
    client: TestClient,
    llama_with_tokenizer: Path,
    tmp_path: Path,
    outtype: str,
    path: str,
    file_type: int,
    matrix_type: str,
    tolerance: float,
) -> None:
    push_ok(client, MODEL, directory_files(llama_with_tokenizer), kind="model")
    body = {} if outtype == "f16" else {"outtype": outtype}
    job = export_ok(client, MODEL, "latest", **body)
    assert job["export"]["path"] == path

    [export] = client.get(exports_url(MODEL, 1)).json()["items"]
    assert (export["path"], export["outtype"]) == (path, outtype)
    assert export["lineage"]["tokenizer_pre"] == "llama-bpe"
    assert export["lineage"]["base"] is None
    gguf = write(tmp_path, path, client.get(f"{API}/repos/{MODEL}/versions/1/files/{path}").content)
    assert hashlib.sha256(gguf.read_bytes()).hexdigest() == export["sha256"]

    meta = metadata(gguf)
    assert (meta["general.type"], meta["general.file_type"]) == ("model", file_type)
    assert meta["tokenizer.ggml.model"] == "gpt2"
    assert meta["tokenizer.ggml.pre"] == "llama-bpe"
    assert meta["llama.block_count"] == TINY_LLAMA["num_hidden_layers"]
    read = tensors(gguf)
    source = load_file(str(llama_with_tokenizer / "model.safetensors"))
    _, embedding = read["token_embd.weight"]
    np.testing.assert_allclose(
        embedding, source["model.embed_tokens.weight"], atol=tolerance, rtol=tolerance
    )
    assert read["blk.0.attn_v.weight"][0] == matrix_type
    assert read["blk.0.attn_norm.weight"][0] == "F32"


def test_refused_submissions_change_nothing(
    sqlite_client: TestClient,
    llama_with_tokenizer: Path,
    lora_adapter_dir: Path,
    dora_adapter_dir: Path,
) -> None:
    client = sqlite_client
    publish_model_and_adapter(client, llama_with_tokenizer, lora_adapter_dir)
    push_ok(client, "acme/dora", directory_files(dora_adapter_dir))
    before = row_counts(client)

    cases: list[tuple[str, str | int, dict[str, Any], int, str, str]] = [
        (ADAPTER, 1, {"format": "onnx"}, 422, "invalid_input", "one of gguf"),
        (ADAPTER, 1, {"outtype": "q4_0", "base": MODEL}, 422, "invalid_input", "q8_0"),
        (ADAPTER, 9, {"base": MODEL}, 404, "version_not_found", "no version 9"),
        (ADAPTER, "staging", {"base": MODEL}, 404, "alias_not_found", "no alias 'staging'"),
        ("acme/nothing", 1, {}, 404, "repository_not_found", "acme/nothing"),
        (ADAPTER, 1, {}, 422, "invalid_input", "not a repository of this registry"),
        (ADAPTER, 1, {"base": "not a ref"}, 422, "invalid_reference", "NAMESPACE/NAME"),
        (ADAPTER, 1, {"base": f"{MODEL}@7"}, 404, "version_not_found", "no version 7"),
        (ADAPTER, 1, {"base": "acme/dora"}, 422, "invalid_input", "a model repository"),
        (MODEL, 1, {"base": MODEL}, 422, "invalid_input", "leave base out"),
        ("acme/dora", 1, {"base": MODEL}, 422, "unsupported_adapter_type", "DoRA"),
    ]
    for repository, ref, body, status, code, words in cases:
        response = client.post(exports_url(repository, ref), json={"format": "gguf", **body})
        where = f"{repository}@{ref} {body}: {response.status_code} {response.text}"
        assert response.status_code == status, where
        assert response.json()["code"] == code, where
        assert words in response.json()["message"], where
    missing_format = client.post(exports_url(ADAPTER, 1), json={"base": MODEL})
    assert missing_format.status_code == 422
    assert row_counts(client) == before


def test_failed_export_jobs_say_why_and_leave_no_export(
    client: TestClient,
    settings: Settings,
    tiny_llama_dir: Path,
    lora_adapter_dir: Path,
) -> None:
    # a model without a tokenizer, and a base model of an architecture llama.cpp lacks here
    push_ok(client, "acme/no-tokenizer", directory_files(tiny_llama_dir), kind="model")
    files = directory_files(tiny_llama_dir)
    config = json.loads(files["config.json"])
    config["architectures"] = ["GPTNeoXForCausalLM"]
    files["config.json"] = json.dumps(config).encode()
    push_ok(client, "acme/neox", files, kind="model")
    push_ok(client, ADAPTER, directory_files(lora_adapter_dir))

    for repository, body, code, words in [
        ("acme/no-tokenizer", {}, "unsupported_tokenizer", "tokenizer"),
        (ADAPTER, {"base": "acme/neox"}, "unsupported_architecture", "LlamaForCausalLM"),
    ]:
        response = submit(client, repository, 1, **body)
        assert response.status_code == 202, response.text
        job = wait_for_job(client, response.json()["id"])
        assert job["state"] == "failed", job["log"]
        assert job["error"]["code"] == code
        assert words in job["error"]["message"]
        # Messages never show the server's own paths (its temporary copies of the inputs).
        for shown in (job["error"]["message"], json.dumps(job["log"])):
            assert str(settings.home) not in shown and str(settings.home.resolve()) not in shown
        assert job["export"]["sha256"] is None
        assert client.get(exports_url(repository, 1)).json()["items"] == []
        events = client.get(f"{API}/audit", params={"action": "export.fail"}).json()["items"]
        assert job["id"] in {event["after"]["job"] for event in events}
    assert row_counts(client)["version_exports"] == 0
    assert client.get(f"{API}/gc", params={"grace_minutes": 0}).json()["unreferenced"] == []
    assert not any(settings.tmp_dir.glob("export-*"))


def test_a_running_export_answers_again_and_a_cancelled_one_leaves_no_file(
    sqlite_settings_slow: Settings,
    llama_with_tokenizer: Path,
    lora_adapter_dir: Path,
) -> None:
    from registry.app import create_app

    with TestClient(create_app(sqlite_settings_slow)) as client:
        publish_model_and_adapter(client, llama_with_tokenizer, lora_adapter_dir)
        job = submit(client, ADAPTER, 1, base=MODEL).json()
        wait_for_job(client, job["id"], until=("running",))
        # the same request while it runs: the running job answers (202), nothing new starts
        same = submit(client, ADAPTER, "latest", base=f"{MODEL}@1")
        assert same.status_code == 202, same.text
        assert (same.json()["id"], same.json()["reused"]) == (job["id"], True)
        cancel = client.post(f"{API}/jobs/{job['id']}/cancel")
        assert cancel.status_code == 200, cancel.text
        done = wait_for_job(client, job["id"])
        assert done["state"] == "cancelled", done["log"]
        assert client.get(exports_url(ADAPTER, 1)).json()["items"] == []
        missing = client.get(f"{API}/repos/{ADAPTER}/versions/1/files/adapter.gguf")
        assert missing.status_code == 404
        assert "lorry exports" in missing.json()["message"]
        events = client.get(f"{API}/audit", params={"action": "export.cancel"}).json()["items"]
        assert [event["after"]["job"] for event in events] == [job["id"]]
        # a new submission is not answered by the cancelled job
        assert submit(client, ADAPTER, 1, base=MODEL).json()["id"] != job["id"]


@pytest.fixture
def sqlite_settings_slow(tmp_path: Path) -> Settings:
    """An embedded registry whose jobs pause after each tensor: slow enough to cancel."""
    from registry import db

    slow = Settings(
        home=tmp_path / "slow",
        database_url=None,
        blob_url=None,
        job_heartbeat_s=0.5,
        compose_module_delay_s=0.5,
    )
    db.upgrade(slow)
    return slow


@pytest.fixture(scope="session")
def dora_adapter_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """A real PEFT DoRA adapter (use_dora: true) on the tiny Llama."""
    import torch
    from peft import LoraConfig, get_peft_model

    from tests.support.factories import load_tiny_llama

    torch.manual_seed(3)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj"], use_dora=True, task_type="CAUSAL_LM"
    )
    model = get_peft_model(load_tiny_llama(tiny_llama_dir), config)
    out = tmp_path_factory.mktemp("dora") / "adapter"
    model.save_pretrained(str(out))
    return out


def test_gc_that_listed_before_an_export_committed_still_keeps_its_blob(
    sqlite_client: TestClient,
    llama_with_tokenizer: Path,
    lora_adapter_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sqlmodel import Session

    from registry.services import gc
    from registry.services.audit import Caller

    client = sqlite_client
    publish_model_and_adapter(client, llama_with_tokenizer, lora_adapter_dir)
    sha256 = export_ok(client, ADAPTER, 1, base=MODEL)["export"]["sha256"]
    # gc's listing of referenced digests ran before the export committed (a race that
    # cannot be timed in a test): the per-blob check under the claimed row must catch it
    monkeypatch.setattr(gc, "_referenced", lambda session: set())
    app = client.app
    with Session(app.state.engine) as session:  # type: ignore[attr-defined]
        report = gc.collect_garbage(
            session,
            app.state.blob_store,  # type: ignore[attr-defined]
            Caller(actor="test"),
            delete_blobs=True,
            grace_minutes=0,
        )
    assert sha256 in {blob.sha256 for blob in report.unreferenced}
    assert sha256 not in report.deleted
    file = client.get(f"{API}/repos/{ADAPTER}/versions/1/files/adapter.gguf")
    assert hashlib.sha256(file.content).hexdigest() == sha256
