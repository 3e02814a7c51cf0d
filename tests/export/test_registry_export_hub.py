"""huggingface_hub itself downloads and lists a registry export (a live registry)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, RepoFile, hf_hub_download, snapshot_download

from registry import db
from registry.config import Settings
from tests.export.exports_api import ADAPTER, MODEL, export_ok, publish_model_and_adapter
from tests.export.reading import metadata
from tests.support.live import LiveServer, start_live_server


@pytest.fixture
def live(backend_settings: Settings) -> Iterator[LiveServer]:
    backend_settings.job_heartbeat_s = 0.5
    db.upgrade(backend_settings)
    server = start_live_server(backend_settings)
    try:
        yield server
    finally:
        server.stop()


def test_hf_hub_download_gets_the_export_at_every_revision_of_its_version(
    live: LiveServer,
    llama_with_tokenizer: Path,
    lora_adapter_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    with httpx.Client(base_url=live.url, timeout=60) as http:
        publish_model_and_adapter(http, llama_with_tokenizer, lora_adapter_dir)
        version = http.get(f"/api/v1/repos/{ADAPTER}/versions/1").json()
        job = export_ok(http, ADAPTER, "production", base=MODEL)
        native = http.get(f"/api/v1/repos/{ADAPTER}/versions/1/files/adapter.gguf").content
        head = http.head(f"/{ADAPTER}/resolve/production/adapter.gguf")
    sha256, size = job["export"]["sha256"], job["export"]["size"]
    assert hashlib.sha256(native).hexdigest() == sha256 and len(native) == size

    # the headers huggingface_hub reads before it downloads
    assert head.status_code == 200, head.text
    assert head.headers["x-repo-commit"] == version["commit"]
    assert head.headers["x-linked-etag"] == f'"{sha256}"'
    assert head.headers["x-linked-size"] == str(size)

    for revision in ("production", "1", version["commit"]):
        path = hf_hub_download(
            ADAPTER,
            "adapter.gguf",
            revision=revision,
            endpoint=live.url,
            cache_dir=tmp_path / "hf-cache" / revision,
        )
        assert Path(path).read_bytes() == native, revision
        assert Path(path).parent.name == version["commit"]
    assert metadata(Path(path))["adapter.type"] == "lora"

    # Named, the export is a file of the revision; listed, it is not (see the next test).
    api = HfApi(endpoint=live.url)
    [info_entry] = api.get_paths_info(ADAPTER, ["adapter.gguf"], revision="1")
    assert isinstance(info_entry, RepoFile) and info_entry.size == size
    assert info_entry.lfs is not None and info_entry.lfs.sha256 == sha256


def test_snapshot_download_of_a_revision_leaves_its_exports_out(
    live: LiveServer,
    llama_with_tokenizer: Path,
    lora_adapter_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    with httpx.Client(base_url=live.url, timeout=60) as http:
        publish_model_and_adapter(http, llama_with_tokenizer, lora_adapter_dir)
        version = http.get(f"/api/v1/repos/{ADAPTER}/versions/1").json()
        export_ok(http, ADAPTER, "production", base=MODEL)
        derived = http.get(f"/api/v1/repos/{ADAPTER}/versions/1/derived").json()
    assert [item["path"] for item in derived["exports"]] == ["adapter.gguf"]
    own = {entry["path"] for entry in version["files"]}

    # what vLLM, PEFT and transformers do: fetch every listed file of a revision
    for revision in ("production", "1", version["commit"]):
        folder = Path(
            snapshot_download(
                ADAPTER, revision=revision, endpoint=live.url, cache_dir=tmp_path / revision
            )
        )
        pulled = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        assert pulled == own, revision

    api = HfApi(endpoint=live.url)
    info = api.model_info(ADAPTER, revision="production", files_metadata=True)
    assert {s.rfilename for s in info.siblings or []} == own
    assert {entry.path for entry in api.list_repo_tree(ADAPTER, revision="1")} == own
    assert set(api.list_repo_files(ADAPTER, revision="production")) == own

    # ... and by name it still downloads, into the same snapshot
    path = Path(
        hf_hub_download(
            ADAPTER, "adapter.gguf", revision="1", endpoint=live.url, cache_dir=tmp_path / "1"
        )
    )
    assert path.parent == tmp_path / "1" / "models--acme--sql-gen" / "snapshots" / version["commit"]
    assert metadata(path)["adapter.type"] == "lora"
