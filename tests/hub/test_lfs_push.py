"""``upload_folder`` with large files, end to end: which path each client takes, and that
the bytes pulled back are the bytes pushed (both backend pairs, Xet on and off). The Xet
path itself: ``test_xet_push``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, snapshot_download

from registry import db
from registry.config import Settings
from tests.hub.live import LiveRegistry, serve_logged
from tests.hub.pushing import XET_MODES, set_xet
from tests.support.files import directory_files
from tests.support.rest import row_counts, version_files

REPO = "acme/long-context"
MiB = 1024 * 1024
PART = 16 * MiB


@pytest.fixture
def lfs_registry(backend_settings: Settings) -> Iterator[LiveRegistry]:
    """A blank registry that streams files of 8 MiB and more (LFS for clients without Xet),
    in multipart above 16 MiB."""
    settings = backend_settings.model_copy(
        update={"hub_lfs_min_bytes": 8 * MiB, "lfs_part_bytes": PART}
    )
    db.upgrade(settings)
    with serve_logged(settings) as (url, log), httpx.Client(base_url=url, timeout=120) as http:
        yield LiveRegistry(url=url, settings=settings, log=log, http=http)


@pytest.fixture(scope="module")
def large_adapter(tmp_path_factory: pytest.TempPathFactory, lora_adapter_dir: Path) -> Path:
    """The test adapter with a 12 MiB file (basic transfer) and a 40 MiB one (3 parts)."""
    folder = tmp_path_factory.mktemp("large") / "adapter"
    shutil.copytree(lora_adapter_dir, folder)
    (folder / "data").mkdir()
    (folder / "data" / "eval.jsonl").write_bytes(os.urandom(12 * MiB + 5))
    (folder / "data" / "train.jsonl").write_bytes(os.urandom(40 * MiB + 3))
    return folder


def _announce_lfs(monkeypatch: pytest.MonkeyPatch, announce: bool) -> None:
    """``HF_HUB_USER_AGENT_ORIGIN=lorry-lfs``, as huggingface_hub reads it at import."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_USER_AGENT_ORIGIN", "lorry-lfs" if announce else None)


def _hub_paths(registry: LiveRegistry, start: int) -> list[str]:
    return [path for _, path in registry.log.since(start) if not path.startswith("/api/v1")]


def _push_and_pull(registry: LiveRegistry, folder: Path, cache: Path) -> str:
    api = HfApi(endpoint=registry.url, token=False)
    api.create_repo(REPO, exist_ok=True)
    commit = api.upload_folder(repo_id=REPO, folder_path=folder, commit_message="long context")
    pulled = snapshot_download(REPO, revision=commit.oid, cache_dir=cache, endpoint=registry.url)
    files = directory_files(Path(pulled))
    assert {path: files[path] for path in directory_files(folder)} == directory_files(folder)
    assert files == version_files(registry.http, REPO, "1")
    return commit.oid


@pytest.mark.parametrize("announce", [True, False])
def test_a_client_without_xet_streams_large_files_through_lfs(
    lfs_registry: LiveRegistry,
    large_adapter: Path,
    hub_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    announce: bool,
) -> None:
    set_xet(monkeypatch, "no-xet")
    _announce_lfs(monkeypatch, announce)
    start = lfs_registry.log.count()

    _push_and_pull(lfs_registry, large_adapter, hub_env)

    paths = _hub_paths(lfs_registry, start)
    assert f"/{REPO}.git/info/lfs/objects/batch" in paths
    assert sum("/parts/" in path for path in paths) == 3  # train.jsonl: 40 MiB in 16 MiB parts
    assert sum(path.startswith("/api/lfs/complete/") for path in paths) == 1
    basic = [p for p in paths if p.startswith("/api/lfs/uploads/") and "/parts/" not in p]
    assert len(basic) == 1  # eval.jsonl: one PUT
    assert sum(path.endswith("/info/lfs/objects/verify") for path in paths) == 2
    assert not [path for path in paths if "xet" in path]
    spool = lfs_registry.settings.tmp_dir
    assert not [p for p in spool.rglob("*") if p.is_file()] if spool.is_dir() else True


@pytest.mark.parametrize("xet", XET_MODES)
def test_without_the_xet_path_a_client_that_does_not_announce_lfs_sends_every_file_inline(
    lfs_registry: LiveRegistry,
    large_adapter: Path,
    hub_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    xet: str,
) -> None:
    monkeypatch.setattr(lfs_registry.settings, "hub_xet", False)
    set_xet(monkeypatch, xet)
    _announce_lfs(monkeypatch, False)
    start = lfs_registry.log.count()

    _push_and_pull(lfs_registry, large_adapter, hub_env)

    paths = _hub_paths(lfs_registry, start)
    assert not [path for path in paths if "lfs" in path or "xet" in path]


def test_without_the_xet_path_a_client_with_xet_on_is_told_to_turn_it_off(
    lfs_registry: LiveRegistry,
    large_adapter: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lfs_registry.settings, "hub_xet", False)
    set_xet(monkeypatch, "xet")
    _announce_lfs(monkeypatch, True)
    api = HfApi(endpoint=lfs_registry.url, token=False)
    api.create_repo(REPO)
    before = row_counts(lfs_registry.settings)

    # hf_xet fetches its token itself and reports only the status and the URL.
    with pytest.raises(Exception, match=r"404 Not Found.*xet-write-token"):
        api.upload_folder(repo_id=REPO, folder_path=large_adapter)

    assert row_counts(lfs_registry.settings) == before
    assert api.list_repo_commits(REPO) == []
