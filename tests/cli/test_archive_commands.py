"""``lorry repo archive|unarchive|delete``, ``lorry version delete`` and ``lorry ls --archived``
against a live registry."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import Lorry, variant_of

REPO = "cli-life/adapter"


def test_archive_hides_freezes_and_unarchive_restores(
    lorry: Lorry, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    assert lorry("push", lora_adapter_dir, REPO).exit_code == 0
    archived = lorry("repo", "archive", REPO, "--reason", "replaced by v2 project")
    assert archived.exit_code == 0, archived.stderr
    assert f"lorry repo unarchive {REPO}" in archived.stdout

    listed = json.loads(lorry("ls", "--namespace", "cli-life", "--json").stdout)
    assert listed["items"] == []
    table = lorry("ls", "--namespace", "cli-life", "--archived")
    assert table.exit_code == 0 and REPO in table.stdout and "(archived)" in table.stdout

    second = variant_of(lora_adapter_dir, tmp_path / "v2", "two")
    refused = lorry("push", second, REPO)
    assert refused.exit_code != 0
    assert "is archived" in refused.stderr and f"lorry repo unarchive {REPO}" in refused.stderr
    shown = lorry("show", REPO)
    assert shown.exit_code == 0 and "replaced by v2 project" in shown.stdout
    pulled = lorry("pull", f"{REPO}@1", tmp_path / "pulled")
    assert pulled.exit_code == 0, pulled.stderr

    assert lorry("repo", "unarchive", REPO).exit_code == 0
    assert lorry("push", second, REPO).exit_code == 0


def test_version_and_repository_delete_need_a_reason_and_leave_a_tombstone(
    lorry: Lorry, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    repo = "cli-life/deleted"
    assert lorry("push", lora_adapter_dir, repo).exit_code == 0
    assert lorry("push", variant_of(lora_adapter_dir, tmp_path / "v2", "two"), repo).exit_code == 0

    no_reason = lorry("version", "delete", f"{repo}@2")
    assert no_reason.exit_code != 0 and "--reason" in no_reason.stderr
    by_alias = lorry("version", "delete", f"{repo}@latest", "--reason", "x")
    assert by_alias.exit_code != 0 and "by its number" in by_alias.stderr

    deleted = lorry("version", "delete", f"{repo}@2", "--reason", "leaked a key")
    assert deleted.exit_code == 0, deleted.stderr
    assert f"deleted {repo}@2" in deleted.stdout and "lorry gc --delete" in deleted.stdout
    shown = lorry("show", f"{repo}@2")
    assert shown.exit_code != 0
    assert "was deleted on" in shown.stderr and "leaked a key" in shown.stderr

    gone = lorry("repo", "delete", repo, "--reason", "project ended", "--json")
    assert gone.exit_code == 0, gone.stderr
    assert [v["version"] for v in json.loads(gone.stdout)["versions"]] == [1]
    missing = lorry("show", repo)
    assert missing.exit_code != 0 and "project ended" in missing.stderr
