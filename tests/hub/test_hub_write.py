"""The Hub write API with huggingface_hub itself: every commit becomes a version."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationCopy,
    CommitOperationDelete,
    HfApi,
    snapshot_download,
)
from huggingface_hub.errors import HfHubHTTPError

from tests.hub.live import LiveRegistry
from tests.hub.pushing import XET_MODES, set_xet
from tests.support.files import directory_files
from tests.support.rest import row_counts, version_files

REPO = "acme/sql-gen"


def _hub_requests(registry: LiveRegistry, start: int) -> list[tuple[str, str]]:
    return [(m, p) for m, p in registry.log.since(start) if not p.startswith("/api/v1")]


@pytest.mark.parametrize("xet", XET_MODES)
def test_create_repo_upload_folder_and_upload_file_publish_versions(
    blank_registry: LiveRegistry,
    lora_adapter_dir: Path,
    hub_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    xet: str,
) -> None:
    set_xet(monkeypatch, xet)
    api = HfApi(endpoint=blank_registry.url, token=False)
    start = blank_registry.log.count()

    url = api.create_repo(REPO, exist_ok=True)
    assert url.repo_id == REPO
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO
    with pytest.raises(HfHubHTTPError) as exists:
        api.create_repo(REPO)
    assert exists.value.response.status_code == 409
    assert api.repo_exists(REPO)
    assert not api.repo_exists("acme/nothing")
    assert api.list_repo_files(REPO) == []

    first = api.upload_folder(
        repo_id=REPO, folder_path=lora_adapter_dir, commit_message="first adapter"
    )
    v1 = blank_registry.http.get(f"/api/v1/repos/{REPO}/versions/1").json()
    assert first.oid == v1["commit"]
    assert (v1["kind"], v1["message"], v1["created_by"]) == ("adapter", "first adapter", "local")
    assert version_files(blank_registry.http, REPO, "1") == directory_files(lora_adapter_dir)

    second = api.upload_file(
        path_or_fileobj=b"accuracy 0.91\n",
        path_in_repo="notes/eval.txt",
        repo_id=REPO,
        commit_message="eval notes",
        commit_description="from the nightly run",
    )
    v2 = blank_registry.http.get(f"/api/v1/repos/{REPO}/versions/2").json()
    assert second.oid == v2["commit"]
    assert v2["message"] == "eval notes\n\nfrom the nightly run"
    files_v2 = version_files(blank_registry.http, REPO, "2")
    assert files_v2 == {
        **version_files(blank_registry.http, REPO, "1"),
        "notes/eval.txt": b"accuracy 0.91\n",
    }

    for revision in (second.oid, "2", "main"):
        folder = snapshot_download(
            REPO, revision=revision, cache_dir=hub_env / revision, endpoint=blank_registry.url
        )
        assert directory_files(Path(folder)) == files_v2, revision
    assert api.file_exists(REPO, "notes/eval.txt")
    assert not api.file_exists(REPO, "notes/missing.txt")
    assert not api.file_exists(REPO, "notes/eval.txt", revision="1")

    commits = api.list_repo_commits(REPO)
    assert [c.commit_id for c in commits] == [second.oid, first.oid]
    assert [c.title for c in commits] == ["eval notes", "first adapter"]
    assert commits[0].authors == ["local"]

    requests = _hub_requests(blank_registry, start)
    assert ("POST", f"/api/models/{REPO}/preupload/main") in requests
    assert not [
        p
        for _, p in requests
        if "xet" in p or "lfs" in p or p.endswith(".git/info/lfs/objects/batch")
    ]


def test_create_commit_copies_and_deletes_and_an_unchanged_commit_adds_no_version(
    blank_registry: LiveRegistry, lora_adapter_dir: Path
) -> None:
    api = HfApi(endpoint=blank_registry.url, token=False)
    api.create_repo(REPO)
    api.upload_folder(repo_id=REPO, folder_path=lora_adapter_dir)
    api.upload_file(path_or_fileobj=b"a\n", path_in_repo="notes/a.txt", repo_id=REPO)
    api.upload_file(path_or_fileobj=b"b\n", path_in_repo="notes/b.txt", repo_id=REPO)
    before = version_files(blank_registry.http, REPO, "3")

    info = api.create_commit(
        REPO,
        operations=[
            CommitOperationCopy(
                src_path_in_repo="adapter_config.json", path_in_repo="backup/adapter_config.json"
            ),
            CommitOperationDelete(path_in_repo="notes/a.txt"),
            CommitOperationAdd(path_in_repo="notes/c.txt", path_or_fileobj=b"c\n"),
        ],
        commit_message="copy, delete, add",
    )
    v4 = blank_registry.http.get(f"/api/v1/repos/{REPO}/versions/4").json()
    assert info.oid == v4["commit"]
    expected = {k: v for k, v in before.items() if k != "notes/a.txt"}
    expected["backup/adapter_config.json"] = before["adapter_config.json"]
    expected["notes/c.txt"] = b"c\n"
    assert version_files(blank_registry.http, REPO, "4") == expected

    folder = api.create_commit(
        REPO,
        operations=[CommitOperationDelete(path_in_repo="notes/", is_folder=True)],
        commit_message="drop notes",
    )
    assert not [p for p in version_files(blank_registry.http, REPO, "5") if p.startswith("notes/")]

    counts = row_counts(blank_registry.settings)
    again = api.upload_file(
        path_or_fileobj=before["adapter_config.json"],
        path_in_repo="adapter_config.json",
        repo_id=REPO,
    )
    assert again.oid == folder.oid
    assert row_counts(blank_registry.settings) == counts


def test_concurrent_commits_without_parent_all_land_on_top_of_each_other(
    blank_registry: LiveRegistry, lora_adapter_dir: Path
) -> None:
    api = HfApi(endpoint=blank_registry.url, token=False)
    api.create_repo(REPO)
    api.upload_folder(repo_id=REPO, folder_path=lora_adapter_dir)
    paths = [f"runs/{n}.txt" for n in range(4)]
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        commits = list(
            pool.map(
                lambda path: api.upload_file(
                    path_or_fileobj=path.encode(), path_in_repo=path, repo_id=REPO
                ),
                paths,
            )
        )
    listed = api.list_repo_commits(REPO)
    assert len(listed) == 1 + len(paths)
    assert {c.oid for c in commits} == {c.commit_id for c in listed[: len(paths)]}
    latest = version_files(blank_registry.http, REPO, "latest")
    assert {path: latest[path] for path in paths} == {path: path.encode() for path in paths}


def test_a_malformed_model_card_is_refused_before_any_upload(
    blank_registry: LiveRegistry, lora_adapter_dir: Path
) -> None:
    api = HfApi(endpoint=blank_registry.url, token=False)
    api.create_repo(REPO)
    start = blank_registry.log.count()
    with pytest.raises(ValueError, match="never closes it"):
        api.upload_file(path_or_fileobj=b"---\ntags: [a\n", path_in_repo="README.md", repo_id=REPO)
    assert [p for _, p in blank_registry.log.since(start)] == ["/api/validate-yaml"]
