"""huggingface_hub itself (snapshot_download, hf_hub_download, HfApi) against a live Lorry."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.hub.live import ADAPTER_REPO, MODEL_REPO, LiveRegistry
from tests.support.files import directory_files
from tests.support.rest import push_ok, version_files


def _revisions(registry: LiveRegistry) -> dict[str, str]:
    """Every way to name version 1 of the adapter repository."""
    v1 = registry.versions["adapter-v1"]
    return {
        "number": "1",
        "alias": "production",
        "digest": v1["digest"],
        "bare digest": v1["digest"].removeprefix("sha256:"),
        "commit id": v1["commit"],
    }


def test_snapshot_download_gives_identical_files_for_every_revision_kind(
    live_registry: LiveRegistry, hub_env: Path
) -> None:
    expected_v1 = version_files(live_registry.http, ADAPTER_REPO, "1")
    for kind, revision in _revisions(live_registry).items():
        folder = snapshot_download(
            ADAPTER_REPO,
            revision=revision,
            cache_dir=hub_env / kind.replace(" ", "-"),
            endpoint=live_registry.url,
        )
        assert directory_files(Path(folder)) == expected_v1, kind
        assert Path(folder).name == live_registry.versions["adapter-v1"]["commit"], kind

    folder = snapshot_download(
        ADAPTER_REPO, revision="main", cache_dir=hub_env / "main", endpoint=live_registry.url
    )
    assert directory_files(Path(folder)) == version_files(live_registry.http, ADAPTER_REPO, "2")
    assert "notes/eval.txt" in directory_files(Path(folder))


def test_hf_hub_download_gives_the_file_of_the_revision(
    live_registry: LiveRegistry, hub_env: Path
) -> None:
    path = hf_hub_download(
        MODEL_REPO,
        "config.json",
        revision="2",
        cache_dir=hub_env,
        endpoint=live_registry.url,
    )
    assert (
        Path(path).read_bytes() == version_files(live_registry.http, MODEL_REPO, "2")["config.json"]
    )
    notes = hf_hub_download(
        MODEL_REPO, "NOTES.txt", revision="1", cache_dir=hub_env, endpoint=live_registry.url
    )
    assert Path(notes).read_bytes() == b"draft\n"


def test_resolve_answers_with_the_hub_headers_and_ranges(live_registry: LiveRegistry) -> None:
    v1 = live_registry.versions["adapter-v1"]
    entry = next(f for f in v1["files"] if f["path"] == "adapter_model.safetensors")
    url = f"{live_registry.url}/{ADAPTER_REPO}/resolve/production/adapter_model.safetensors"
    with httpx.Client(follow_redirects=False, timeout=30) as http:
        head = http.head(url)
        assert head.status_code == 200
        assert head.headers["x-repo-commit"] == v1["commit"]
        assert head.headers["etag"] == f'"{entry["sha256"]}"'
        assert head.headers["x-linked-etag"] == f'"{entry["sha256"]}"'
        assert head.headers["x-linked-size"] == str(entry["size"])
        assert head.headers["content-length"] == str(entry["size"])
        assert head.headers["accept-ranges"] == "bytes"

        get = http.get(url, headers={"Range": "bytes=0-7"})
        if live_registry.presigns:
            assert get.status_code == 302
            assert get.headers["x-repo-commit"] == v1["commit"]
            assert get.headers["x-linked-size"] == str(entry["size"])
            assert not get.headers["location"].startswith(live_registry.url)
            get = http.get(get.headers["location"], headers={"Range": "bytes=0-7"})
        assert get.status_code == 206
        assert get.headers["content-range"] == f"bytes 0-7/{entry['size']}"
        header_length = int.from_bytes(get.content, "little")
        assert 0 < header_length < entry["size"]


def test_missing_repository_revision_and_file_raise_the_clients_errors(
    live_registry: LiveRegistry, hub_env: Path
) -> None:
    url = live_registry.url
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("acme/nothing", "config.json", cache_dir=hub_env, endpoint=url)
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("acme/nothing", cache_dir=hub_env, endpoint=url)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(ADAPTER_REPO, "README.md", revision="7", cache_dir=hub_env, endpoint=url)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(ADAPTER_REPO, revision="staging", cache_dir=hub_env, endpoint=url)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(ADAPTER_REPO, revision="0" * 40, cache_dir=hub_env, endpoint=url)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(ADAPTER_REPO, revision="refs/pr/1", cache_dir=hub_env, endpoint=url)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(ADAPTER_REPO, "model.bin", cache_dir=hub_env, endpoint=url)

    api = HfApi(endpoint=url)
    assert api.file_exists(ADAPTER_REPO, "adapter_config.json", revision="production")
    assert not api.file_exists(ADAPTER_REPO, "notes/eval.txt", revision="production")
    assert api.file_exists(ADAPTER_REPO, "notes/eval.txt", revision="2")
    assert not api.file_exists("acme/nothing", "adapter_config.json")
    assert not api.revision_exists(ADAPTER_REPO, "staging")
    assert api.revision_exists(ADAPTER_REPO, "production")
    assert not api.repo_exists("acme/nothing")


def test_repo_info_has_a_stable_sha_and_lfs_siblings(live_registry: LiveRegistry) -> None:
    api = HfApi(endpoint=live_registry.url)
    v1 = live_registry.versions["adapter-v1"]
    info = api.model_info(ADAPTER_REPO, revision="production", files_metadata=True)
    assert info.id == ADAPTER_REPO
    assert info.sha == v1["commit"]
    assert info.private is False
    assert info.library_name == "peft"
    assert info.last_modified is not None
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert set(siblings) == {f["path"] for f in v1["files"]}
    for entry in v1["files"]:
        sibling = siblings[entry["path"]]
        assert sibling.size == entry["size"]
        assert sibling.lfs is not None
        assert sibling.lfs.sha256 == entry["sha256"]
        assert sibling.lfs.size == entry["size"]
    assert api.model_info(ADAPTER_REPO, revision="1").sha == v1["commit"]
    assert api.model_info(ADAPTER_REPO).sha == live_registry.versions["adapter-v2"]["commit"]
    refs = api.list_repo_refs(ADAPTER_REPO)
    assert [(b.name, b.target_commit) for b in refs.branches] == [
        ("main", live_registry.versions["adapter-v2"]["commit"])
    ]
    assert ("production", v1["commit"]) in [(t.name, t.target_commit) for t in refs.tags]


def test_tree_listing_is_paginated_like_the_hub(live_registry: LiveRegistry) -> None:
    files = {f"data/part-{i:03d}/shard.txt": f"shard {i}\n".encode() for i in range(60)}
    files["README.md"] = b"---\nlicense: mit\n---\n# Shards\n"
    files["config.json"] = b'{"model_type": "llama"}'
    files["model.safetensors"] = b"\x02\x00\x00\x00\x00\x00\x00\x00{}"
    version = push_ok(live_registry.http, "acme/shards", files, kind="model")
    api = HfApi(endpoint=live_registry.url)

    start = live_registry.log.count()
    expanded = list(api.list_repo_tree("acme/shards", recursive=True, expand=True))
    tree_pages = [path for method, path in live_registry.log.since(start) if "/tree/" in path]
    assert len(tree_pages) == 3, tree_pages  # 60 files + 61 directories, 50 per page
    listed_files = {entry.path: entry for entry in expanded if hasattr(entry, "size")}
    assert set(listed_files) == set(files)
    assert all(e.last_commit and e.last_commit.oid == version["commit"] for e in expanded)

    top = {entry.path for entry in api.list_repo_tree("acme/shards")}
    assert top == {"README.md", "config.json", "model.safetensors", "data"}
    under = list(api.list_repo_tree("acme/shards", path_in_repo="data/part-007"))
    assert [entry.path for entry in under] == ["data/part-007/shard.txt"]
    assert sorted(api.list_repo_files("acme/shards")) == sorted(files)
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree("acme/shards", path_in_repo="nothing/here"))

    infos = api.get_paths_info(
        "acme/shards", ["README.md", "data/part-001", "missing.txt"], revision="1"
    )
    assert [(type(info).__name__, info.path) for info in infos] == [
        ("RepoFile", "README.md"),
        ("RepoFolder", "data/part-001"),
    ]


def test_a_revision_cached_by_commit_id_does_not_ask_the_server_again(
    live_registry: LiveRegistry, hub_env: Path
) -> None:
    commit = live_registry.versions["adapter-v1"]["commit"]
    first = snapshot_download(
        ADAPTER_REPO, revision=commit, cache_dir=hub_env, endpoint=live_registry.url
    )
    single = hf_hub_download(
        ADAPTER_REPO,
        "adapter_config.json",
        revision=commit,
        cache_dir=hub_env,
        endpoint=live_registry.url,
    )

    start = live_registry.log.count()
    again = snapshot_download(
        ADAPTER_REPO, revision=commit, cache_dir=hub_env, endpoint=live_registry.url
    )
    single_again = hf_hub_download(
        ADAPTER_REPO,
        "adapter_config.json",
        revision=commit,
        cache_dir=hub_env,
        endpoint=live_registry.url,
    )
    assert live_registry.log.since(start) == []
    assert (again, single_again) == (first, single)
