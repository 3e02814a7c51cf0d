"""Publishing versions through the HTTP API, and what a bad push leaves behind (nothing)."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from registry.app import create_app
from registry.config import Settings
from tests.support.factories import load_tiny_llama
from tests.support.files import sha256_of
from tests.support.rest import API, push, push_ok, row_counts, upload, upload_files, with_extra

REPO = "acme/sql-gen"


def _pull(client: TestClient, ref: str, files: list[dict[str, object]], out: Path) -> Path:
    for entry in files:
        response = client.get(f"{API}/repos/{REPO}/versions/{ref}/files/{entry['path']}")
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == f'"{entry["sha256"]}"'
        target = out / str(entry["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(response.content)
    return out


def _logits(base_dir: Path, adapter_dir: Path) -> torch.Tensor:
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_tiny_llama(base_dir), adapter_dir)
    model.eval()
    with torch.no_grad():
        return model(torch.arange(16).reshape(1, 16)).logits


def test_push_then_pull_by_every_ref_gives_identical_files_that_peft_loads(
    client: TestClient,
    adapter_files: dict[str, bytes],
    lora_adapter_dir: Path,
    tiny_llama_dir: Path,
    tmp_path: Path,
) -> None:
    version = push_ok(client, REPO, adapter_files, alias="production", message="first")
    assert version["version"] == 1
    assert version["aliases"] == ["production"]
    assert version["commit"] == version["digest"].removeprefix("sha256:")[:40]
    assert version["metadata"]["peft_type"] == "LORA"
    assert version["metadata"]["r"] == 8
    assert version["size"] == sum(len(data) for data in adapter_files.values())
    assert {f["path"] for f in version["files"]} == set(adapter_files)

    digest = version["digest"]
    refs = ["1", "latest", "production", digest, digest.removeprefix("sha256:"), version["commit"]]
    for index, ref in enumerate(refs):
        shown = client.get(f"{API}/repos/{REPO}/versions/{ref}")
        assert shown.status_code == 200, shown.text
        assert shown.json()["version"] == 1
        pulled = _pull(client, ref, version["files"], tmp_path / f"pull-{index}")
        for path, data in adapter_files.items():
            assert (pulled / path).read_bytes() == data

    expected = _logits(tiny_llama_dir, lora_adapter_dir)
    actual = _logits(tiny_llama_dir, tmp_path / "pull-2")
    assert torch.equal(actual, expected)


def test_push_without_model_card_stores_a_generated_one(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    files = {path: data for path, data in adapter_files.items() if path != "README.md"}
    version = push_ok(client, REPO, files)
    paths = {f["path"] for f in version["files"]}
    assert paths == set(files) | {"README.md"}
    assert version["card"]["library_name"] == "peft"
    card = client.get(f"{API}/repos/{REPO}/versions/1/files/README.md")
    assert card.status_code == 200
    assert card.text.startswith("---\n")
    assert "library_name: peft" in card.text


def test_each_push_makes_the_next_number_and_versions_list_newest_first(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    for number in (1, 2, 3):
        version = push_ok(client, REPO, with_extra(adapter_files, "notes.txt", b"%d" % number))
        assert version["version"] == number
    listed = client.get(f"{API}/repos/{REPO}/versions").json()
    assert listed["total"] == 3
    assert [item["version"] for item in listed["items"]] == [3, 2, 1]
    page = client.get(f"{API}/repos/{REPO}/versions", params={"limit": 1, "offset": 1}).json()
    assert [item["version"] for item in page["items"]] == [2]
    repo = client.get(f"{API}/repos/{REPO}").json()
    assert repo["latest_version"] == 3


def test_publish_rejects_a_version_identical_to_an_existing_one(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, REPO, adapter_files)
    before = row_counts(client)
    response = push(client, REPO, adapter_files)
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "conflict"
    assert "identical to version 1" in body["message"]
    assert "lorry alias set" in body["message"]
    assert row_counts(client) == before


def test_blobs_are_shared_between_versions_and_repositories(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, REPO, adapter_files)
    push_ok(client, "other/copy", adapter_files)
    counts = row_counts(client)
    assert counts["versions"] == 2
    assert counts["blobs"] == len(adapter_files)
    assert counts["version_files"] == 2 * len(adapter_files)


def _config(files: dict[str, bytes], **changes: object) -> dict[str, bytes]:
    config = json.loads(files["adapter_config.json"])
    config.update(changes)
    return {**files, "adapter_config.json": json.dumps(config).encode()}


def _without(files: dict[str, bytes], path: str) -> dict[str, bytes]:
    return {key: value for key, value in files.items() if key != path}


def _truncated_header(files: dict[str, bytes]) -> dict[str, bytes]:
    data = files["adapter_model.safetensors"]
    (length,) = struct.unpack("<Q", data[:8])
    return {**files, "adapter_model.safetensors": data[: 8 + length // 2]}


BAD_PUSHES: dict[str, tuple[Callable[[dict[str, bytes]], dict[str, bytes]], str, int]] = {
    "pickled-weights": (
        lambda f: with_extra(f, "adapter_model.bin", b"\x80\x04pickle"),
        "pickle_not_allowed",
        422,
    ),
    "parent-path": (lambda f: with_extra(f, "../escape.txt", b"x"), "invalid_path", 422),
    "absolute-path": (lambda f: with_extra(f, "/etc/passwd", b"x"), "invalid_path", 422),
    "backslash-path": (lambda f: with_extra(f, "sub\\file.txt", b"x"), "invalid_path", 422),
    "unsupported-peft-type": (
        lambda f: _config(f, peft_type="LOHA"),
        "unsupported_adapter_type",
        422,
    ),
    "missing-rank": (lambda f: _config(f, r=None), "invalid_adapter", 422),
    "rank-disagrees-with-tensors": (lambda f: _config(f, r=4), "invalid_adapter", 422),
    "no-adapter-config": (lambda f: _without(f, "adapter_config.json"), "invalid_adapter", 422),
    "truncated-safetensors": (_truncated_header, "invalid_safetensors", 422),
    "broken-card": (
        lambda f: {**f, "README.md": b"---\nbase_model: [unclosed\n---\n"},
        "invalid_model_card",
        422,
    ),
}


@pytest.mark.parametrize("case", list(BAD_PUSHES))
def test_bad_push_is_refused_with_a_message_and_leaves_nothing(
    client: TestClient, adapter_files: dict[str, bytes], case: str
) -> None:
    make, code, status = BAD_PUSHES[case]
    response = push(client, REPO, make(adapter_files), alias="production")
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert len(body["message"]) > 20
    assert all(count == 0 for count in row_counts(client).values()), row_counts(client)
    assert client.get(f"{API}/repos/{REPO}").status_code == 404


def test_push_of_a_file_that_was_not_uploaded_names_it_and_leaves_nothing(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    manifest = upload_files(client, adapter_files)
    ghost = b"never uploaded"
    manifest.append({"path": "extra.txt", "sha256": sha256_of(ghost), "size": len(ghost)})
    response = client.post(f"{API}/repos/{REPO}/versions", json={"files": manifest})
    assert response.status_code == 422
    assert response.json()["code"] == "missing_blob"
    assert "extra.txt" in response.json()["message"]
    assert all(count == 0 for count in row_counts(client).values())


def test_push_with_a_wrong_size_is_refused(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    manifest = upload_files(client, adapter_files)
    manifest[0]["size"] += 1
    response = client.post(f"{API}/repos/{REPO}/versions", json={"files": manifest})
    assert response.status_code == 422
    assert "size" in response.json()["message"]
    assert all(count == 0 for count in row_counts(client).values())


@pytest.mark.parametrize(
    ("repository", "alias"),
    [("acme/-bad", None), ("ac%20me/x", None), (REPO, "latest"), (REPO, "Prod"), (REPO, "42")],
)
def test_push_with_a_bad_repository_or_alias_name_is_refused(
    sqlite_client: TestClient, adapter_files: dict[str, bytes], repository: str, alias: str | None
) -> None:
    response = push(sqlite_client, repository, adapter_files, alias=alias)
    assert response.status_code == 422, response.text
    assert response.json()["code"] in ("invalid_input", "invalid_request")
    assert all(count == 0 for count in row_counts(sqlite_client).values())


def test_push_over_the_size_limits_is_refused(
    sqlite_settings: Settings, adapter_files: dict[str, bytes]
) -> None:
    settings = sqlite_settings.model_copy(update={"max_version_bytes": 1000})
    with TestClient(create_app(settings)) as client:
        response = push(client, REPO, adapter_files)
        assert response.status_code == 413
        assert response.json()["code"] == "too_large"
        assert "LORRY_MAX_VERSION_BYTES" in response.json()["message"]
        assert all(count == 0 for count in row_counts(client).values())


def test_malformed_publish_body_gets_invalid_request(sqlite_client: TestClient) -> None:
    response = sqlite_client.post(
        f"{API}/repos/{REPO}/versions", json={"files": [{"path": "a", "sha256": "xyz"}]}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_request"
    assert "files.0.sha256" in body["message"]


def test_an_uploaded_blob_is_reused_without_a_second_upload(
    sqlite_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    data = adapter_files["adapter_model.safetensors"]
    upload(sqlite_client, data)
    head = sqlite_client.head(f"{API}/blobs/sha256/{sha256_of(data)}")
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(data)


def test_failure_inside_the_commit_leaves_no_version_and_a_500_with_the_request_id(
    settings: Settings, adapter_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.services import publish

    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("simulated crash after the version row was written")

    monkeypatch.setattr(publish, "record_event", crash)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = push(client, REPO, adapter_files, alias="production")
        assert response.status_code == 500
        body = response.json()
        assert body["code"] == "internal"
        assert "request id" in body["message"]
        assert all(count == 0 for count in row_counts(client).values()), row_counts(client)
        monkeypatch.undo()
        assert push_ok(client, REPO, adapter_files)["version"] == 1
