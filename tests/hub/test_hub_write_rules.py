"""The Hub write API keeps Lorry's rules: scopes, protected aliases, validation, atomicity."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError

from tests.hub.live import LiveRegistry
from tests.support.rest import API, row_counts, version_files
from tests.support.tokens import make_token

REPO = "acme/sql-gen"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _refused(call: object, status: int, *needles: str) -> str:
    assert callable(call)
    with pytest.raises(HfHubHTTPError) as raised:
        call()
    assert raised.value.response.status_code == status, str(raised.value)
    for needle in needles:
        assert needle in str(raised.value), str(raised.value)
    return str(raised.value)


def test_branches_and_tags_are_aliases_with_history_and_audit(
    blank_registry: LiveRegistry, lora_adapter_dir: Path
) -> None:
    api = HfApi(endpoint=blank_registry.url, token=False)
    api.create_repo(REPO)
    first = api.upload_folder(repo_id=REPO, folder_path=lora_adapter_dir)

    api.create_branch(REPO, branch="staging")
    _refused(lambda: api.create_branch(REPO, branch="staging"), 409, "already exists")
    api.create_branch(REPO, branch="staging", exist_ok=True)
    on_branch = api.upload_file(
        path_or_fileobj=b"staged\n",
        path_in_repo="notes.txt",
        repo_id=REPO,
        revision="staging",
        commit_message="try on staging",
    )
    alias = blank_registry.http.get(f"{API}/repos/{REPO}/aliases/staging").json()
    assert (alias["version"], alias["digest"][7:47]) == (2, on_branch.oid)

    api.create_tag(REPO, tag="first-release", revision=first.oid, tag_message="ship v1")
    refs = api.list_repo_refs(REPO)
    tags = {ref.name: ref.target_commit for ref in refs.tags}
    assert tags["staging"] == on_branch.oid
    assert tags["first-release"] == first.oid
    released = blank_registry.http.get(f"{API}/repos/{REPO}/aliases/first-release").json()
    assert (released["version"], released["reason"]) == (1, "ship v1")

    history = blank_registry.http.get(f"{API}/repos/{REPO}/aliases/staging/history").json()
    assert [(h["from_version"], h["to_version"], h["actor"]) for h in history["items"]] == [
        (None, 1, "local"),
        (1, 2, "local"),
    ]
    audit = blank_registry.http.get(f"{API}/audit", params={"repository": REPO}).json()
    actions = [event["action"] for event in audit["items"]]
    assert actions.count("alias.set") == 3 and actions.count("version.publish") == 2

    api.delete_tag(REPO, tag="first-release")
    assert blank_registry.http.get(f"{API}/repos/{REPO}/aliases/first-release").status_code == 404
    _refused(
        lambda: api.upload_file(
            path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=REPO, revision="nope"
        ),
        404,
    )


def test_scopes_whoami_list_models_and_delete_repo(
    blank_registry: LiveRegistry, lora_adapter_dir: Path
) -> None:
    local = HfApi(endpoint=blank_registry.url, token=False)
    local.create_repo(REPO)
    local.upload_folder(repo_id=REPO, folder_path=lora_adapter_dir)
    local.create_repo("acme/tone")
    local.create_repo("other/sql-x")
    settings = blank_registry.settings
    writer = make_token(settings, ["write"], ["acme/*"], "ci")
    reader = make_token(settings, ["read"], ["acme/*"], "analyst")
    admin = make_token(settings, ["admin"], ["*"], "root")
    as_writer = HfApi(endpoint=blank_registry.url, token=writer)
    as_reader = HfApi(endpoint=blank_registry.url, token=reader)

    me = as_writer.whoami()
    assert me["name"] == "ci"
    assert me["lorry"]["scopes"] == ["read", "write"] and me["lorry"]["namespaces"] == ["acme/*"]
    assert me["auth"]["accessToken"]["role"] == "write"
    assert as_reader.whoami()["auth"]["accessToken"]["role"] == "read"
    _refused(lambda: HfApi(endpoint=blank_registry.url, token="hf_xyz").whoami(), 401)

    assert [m.id for m in as_reader.list_models(search="sql")] == [REPO]
    assert [m.id for m in as_reader.list_models(author="acme")] == [REPO, "acme/tone"]
    everything = list(HfApi(endpoint=blank_registry.url, token=admin).list_models())
    assert [m.id for m in everything] == [REPO, "acme/tone", "other/sql-x"]
    sha = {m.id: m.sha for m in everything}
    assert sha[REPO] == blank_registry.http.get(f"{API}/repos/{REPO}/versions/1").json()["commit"]
    assert sha["acme/tone"] is None

    counts = row_counts(settings)
    _refused(lambda: as_writer.create_repo("other/x"), 403, "namespace 'other'")
    _refused(lambda: as_writer.create_repo("other/sql-x", exist_ok=True), 403)
    _refused(
        lambda: as_writer.upload_file(
            path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="other/sql-x"
        ),
        403,
    )
    _refused(
        lambda: as_reader.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=REPO),
        403,
        "write",
    )
    _refused(lambda: as_writer.delete_repo(REPO), 403, "lorry repo archive", "lorry repo delete")
    assert row_counts(settings) == counts
    assert as_writer.create_repo("acme/new").repo_id == "acme/new"


def test_refused_commits_store_nothing(
    blank_registry: LiveRegistry, lora_adapter_dir: Path
) -> None:
    api = HfApi(endpoint=blank_registry.url, token=False)
    api.create_repo(REPO)
    first = api.upload_folder(repo_id=REPO, folder_path=lora_adapter_dir)
    api.upload_file(path_or_fileobj=b"n\n", path_in_repo="notes.txt", repo_id=REPO)
    settings = blank_registry.settings
    admin = make_token(settings, ["admin"], ["*"], "root")
    writer = make_token(settings, ["write"], ["acme/*"], "ci")
    as_writer = HfApi(endpoint=blank_registry.url, token=writer)
    rule = blank_registry.http.post(
        f"{API}/policies",
        json={"repository": "acme/*", "alias": "production"},
        headers=_bearer(admin),
    ).json()
    moved = blank_registry.http.put(
        f"{API}/repos/{REPO}/aliases/production",
        json={"version": 1, "reason": "first"},
        headers=_bearer(admin),
    )
    assert moved.status_code == 200, moved.text
    counts = row_counts(settings)

    _refused(
        lambda: as_writer.upload_file(
            path_or_fileobj=b"\x80\x04K\x01.", path_in_repo="adapter_model.bin", repo_id=REPO
        ),
        422,
        "adapter_model.bin",
        "safetensors",
    )
    _refused(
        lambda: as_writer.upload_file(
            path_or_fileobj=b"\xff" * 64, path_in_repo="adapter_model.safetensors", repo_id=REPO
        ),
        422,
        "adapter_model.safetensors",
    )
    _refused(
        lambda: as_writer.upload_file(
            path_or_fileobj=b"p\n", path_in_repo="p.txt", repo_id=REPO, revision="production"
        ),
        403,
        f"rule {rule['id']}",
        "promote",
    )
    _refused(
        lambda: as_writer.create_commit(
            REPO,
            operations=[CommitOperationAdd(path_in_repo="late.txt", path_or_fileobj=b"late")],
            commit_message="based on v1",
            parent_commit=first.oid,
        ),
        412,
        first.oid,
    )
    bad_oid = blank_registry.http.post(
        f"/api/models/{REPO}/commit/main",
        content=(
            b'{"key": "header", "value": {"summary": "lfs"}}\n'
            b'{"key": "lfsFile", "value": {"path": "big.bin.safetensors", "algo": "sha256", '
            b'"oid": "' + b"a" * 64 + b'", "size": 10}}\n'
        ),
        headers={"Content-Type": "application/x-ndjson", **_bearer(writer)},
    )
    assert bad_oid.status_code == 422
    # Not held by acme (and not stored): the same answer as for another namespace's blob.
    assert "was not uploaded to this namespace" in bad_oid.headers["X-Error-Message"]
    assert row_counts(settings) == counts
    assert (
        version_files(blank_registry.http, REPO, "production").keys()
        == version_files(blank_registry.http, REPO, "1").keys()
    )
