"""Regular (base64-in-NDJSON) commits of files larger than the server's scan chunk."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from registry.services import hub_ndjson
from tests.hub.live import LiveRegistry
from tests.hub.pushing import set_xet
from tests.support.rest import row_counts, version_files

REPO = "acme/streamed"


def _spool_files(tmp_dir: Path) -> list[str]:
    if not tmp_dir.exists():
        return []
    return [name for name in os.listdir(tmp_dir) if "upload-" in name or "commit-" in name]


def test_a_file_larger_than_the_chunk_round_trips_and_refusals_leave_nothing(
    blank_registry: LiveRegistry, lora_adapter_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_xet(monkeypatch, "xet")  # hf_xet present; under LORRY_HUB_LFS_MIN_BYTES: "regular"
    api = HfApi(endpoint=blank_registry.url, token=False)
    api.create_repo(REPO)
    api.upload_folder(repo_id=REPO, folder_path=lora_adapter_dir)
    adapter = version_files(blank_registry.http, REPO, "1")
    data = os.urandom(3 * hub_ndjson.CHUNK + 12_345)
    start = blank_registry.log.count()
    api.upload_file(path_or_fileobj=data, path_in_repo="data/raw.dat", repo_id=REPO)
    paths = [path for _, path in blank_registry.log.since(start)]
    assert not any("/info/lfs/" in path for path in paths), "the file went through LFS"
    assert version_files(blank_registry.http, REPO, "2") == {**adapter, "data/raw.dat": data}
    version = blank_registry.http.get(f"/api/v1/repos/{REPO}/versions/2").json()
    (entry,) = [entry for entry in version["files"] if entry["path"] == "data/raw.dat"]
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    settings = blank_registry.settings
    assert _spool_files(settings.tmp_dir) == []

    counts = row_counts(settings)
    header = json.dumps({"key": "header", "value": {"summary": "bad"}}).encode()
    good = base64.b64encode(data).decode()
    bodies = {
        "not valid base64": {"path": "w.dat", "content": good[:-5] + "*" + good[-4:]},
        "over the limit": {"path": "w.dat", "content": good},
    }
    monkeypatch.setattr(settings, "max_file_bytes", len(data) - 1)
    for needle, value in bodies.items():
        line = json.dumps({"value": value, "key": "file"}).encode()
        refused = blank_registry.http.post(
            f"/api/models/{REPO}/commit/main",
            content=header + b"\n" + line + b"\n",
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert refused.status_code in (413, 422), refused.text
        assert needle in refused.headers["X-Error-Message"], refused.headers
        assert _spool_files(settings.tmp_dir) == []
    assert row_counts(settings) == counts
