"""The Xet upload path: huggingface_hub with hf_xet (the default client) pushes large files
through Lorry's Xet storage routes, streamed, on both backend pairs; forged or altered
uploads are refused and leave nothing referenced."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from registry import db
from registry.config import Settings
from tests.hub.live import LiveRegistry, serve_logged
from tests.hub.pushing import set_xet
from tests.support.files import directory_files
from tests.support.rest import row_counts, version_files

REPO = "acme/long-context"
MiB = 1024 * 1024


@pytest.fixture
def xet_registry(backend_settings: Settings) -> Iterator[LiveRegistry]:
    """A blank registry that streams files of 8 MiB and more (Xet for hf_xet clients)."""
    settings = backend_settings.model_copy(update={"hub_lfs_min_bytes": 8 * MiB})
    db.upgrade(settings)
    with serve_logged(settings) as (url, log), httpx.Client(base_url=url, timeout=120) as http:
        yield LiveRegistry(url=url, settings=settings, log=log, http=http)


@pytest.fixture
def xet_client(hub_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """huggingface_hub as installed: hf_xet on, its cache in the test's directory."""
    set_xet(monkeypatch, "xet")
    monkeypatch.setenv("HF_XET_CACHE", str(hub_env.parent / "xet-cache"))
    return hub_env


@pytest.fixture(scope="module")
def large_adapter(tmp_path_factory: pytest.TempPathFactory, lora_adapter_dir: Path) -> Path:
    """The test adapter with two large files: 12 MiB of text-like bytes (LZ4 compresses
    them) and 40 MiB of random bytes (several xorbs' worth of chunks stored as they are)."""
    folder = tmp_path_factory.mktemp("large") / "adapter"
    shutil.copytree(lora_adapter_dir, folder)
    (folder / "data").mkdir()
    line = b'{"prompt": "SELECT name FROM users WHERE id = ?", "completion": "ok"}\n'
    text = (line * (12 * MiB // len(line) + 1))[: 12 * MiB + 5]
    (folder / "data" / "eval.jsonl").write_bytes(text)
    (folder / "data" / "train.jsonl").write_bytes(os.urandom(40 * MiB + 3))
    return folder


def _hub_paths(registry: LiveRegistry, start: int) -> list[str]:
    return [path for _, path in registry.log.since(start) if not path.startswith("/api/v1")]


def test_the_default_client_streams_large_files_through_xet(
    xet_registry: LiveRegistry, large_adapter: Path, xet_client: Path
) -> None:
    api = HfApi(endpoint=xet_registry.url, token=False)
    api.create_repo(REPO)
    start = xet_registry.log.count()

    commit = api.upload_folder(repo_id=REPO, folder_path=large_adapter, commit_message="data")

    paths = _hub_paths(xet_registry, start)
    assert f"/api/models/{REPO}/xet-write-token/main" in paths
    assert sum(f"/api/xet/{REPO}/v1/xorbs/" in path for path in paths) >= 1
    assert f"/api/xet/{REPO}/v1/shards" in paths
    assert not [path for path in paths if "/lfs/" in path]
    pulled = snapshot_download(
        REPO, revision=commit.oid, cache_dir=xet_client, endpoint=xet_registry.url
    )
    files = directory_files(Path(pulled))
    assert {path: files[path] for path in directory_files(large_adapter)} == directory_files(
        large_adapter
    )
    assert files == version_files(xet_registry.http, REPO, "1")
    spool = xet_registry.settings.tmp_dir
    assert not [p for p in spool.rglob("*") if p.is_file()] if spool.is_dir() else True

    # upload_file of one more large file: a second commit, a second version
    extra = xet_client.parent / "corpus.txt"
    extra.write_bytes(os.urandom(9 * MiB))
    api.upload_file(path_or_fileobj=extra, path_in_repo="extra/corpus.txt", repo_id=REPO)
    assert version_files(xet_registry.http, REPO, "2")["extra/corpus.txt"] == extra.read_bytes()


def test_a_refused_commit_after_a_xet_upload_leaves_nothing_referenced(
    xet_registry: LiveRegistry, lora_adapter_dir: Path, xet_client: Path
) -> None:
    api = HfApi(endpoint=xet_registry.url, token=False)
    api.create_repo(REPO)
    folder = xet_client.parent / "pickled"
    shutil.copytree(lora_adapter_dir, folder)
    (folder / "adapter_model.bin").write_bytes(os.urandom(9 * MiB))  # pickled weights: refused
    before = row_counts(xet_registry.settings)
    start = xet_registry.log.count()

    with pytest.raises(HfHubHTTPError, match="pickle"):
        api.upload_folder(repo_id=REPO, folder_path=folder)

    assert f"/api/xet/{REPO}/v1/shards" in _hub_paths(xet_registry, start)  # it went by Xet
    assert row_counts(xet_registry.settings) == before
    assert api.list_repo_commits(REPO) == []
