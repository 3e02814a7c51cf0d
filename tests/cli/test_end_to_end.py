"""The installed ``lorry`` executable, as a user runs it, against a live registry."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.support.processes import lorry_executable


def _run(registry_url: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LORRY_URL": registry_url}
    return subprocess.run(
        [lorry_executable(), *[str(arg) for arg in args]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_lorry_process_pushes_aliases_pulls_and_audits(
    registry_url: str, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    pushed = _run(registry_url, "push", lora_adapter_dir, "e2e/adapter", "--json")
    assert pushed.returncode == 0, pushed.stderr
    version = json.loads(pushed.stdout)
    assert version["ref"] == "e2e/adapter@1"

    moved = _run(registry_url, "alias", "set", "e2e/adapter", "production", "1", "--reason", "go")
    assert moved.returncode == 0, moved.stderr
    assert "e2e/adapter@production → 1" in moved.stdout

    pulled = _run(registry_url, "pull", "e2e/adapter@production", tmp_path / "out")
    assert pulled.returncode == 0, pulled.stderr
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (tmp_path / "out" / name).read_bytes() == (lora_adapter_dir / name).read_bytes()

    audit = _run(registry_url, "audit", "--repo", "e2e/adapter", "--action", "alias.set", "--json")
    assert audit.returncode == 0, audit.stderr
    (event,) = json.loads(audit.stdout)["items"]
    assert event["actor"] == "local"
    assert event["after"]["version"] == 1


def test_lorry_process_reports_registry_errors_on_stderr_with_exit_status_1(
    registry_url: str, tmp_path: Path
) -> None:
    result = _run(registry_url, "pull", "e2e/no-such-adapter", tmp_path / "out")

    assert result.returncode == 1
    assert result.stdout == ""
    assert "error:" in result.stderr
    assert "repository_not_found" in result.stderr
