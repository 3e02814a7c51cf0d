"""A `lorry serve` killed (SIGKILL) in the middle of a Hub commit leaves no version."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from registry import db
from registry.config import Settings
from tests.support.files import directory_files
from tests.support.processes import free_port, lorry_process, settings_env
from tests.support.rest import row_counts

REPO = "acme/sql-gen"


def _half_sent_commit(sent: threading.Event, release: threading.Event) -> Iterator[bytes]:
    yield json.dumps({"key": "header", "value": {"summary": "never lands"}}).encode() + b"\n"
    content = base64.b64encode(b"\x00" * (4 * 1024 * 1024)).decode()
    line = json.dumps({"key": "file", "value": {"path": "big.txt", "content": content}})
    yield line[: len(line) // 2].encode()
    sent.set()
    release.wait(60)


@pytest.mark.slow
def test_a_server_killed_mid_commit_leaves_no_version(
    backend_settings: Settings, lora_adapter_dir: Path, tmp_path: Path
) -> None:
    db.upgrade(backend_settings)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = settings_env(backend_settings.model_copy(update={"port": port}))
    with lorry_process(["serve"], env, tmp_path / "serve-1.log") as server:
        server.wait_until_serving(url)
        api = HfApi(endpoint=url, token=False)
        api.create_repo(REPO)
        api.upload_folder(repo_id=REPO, folder_path=lora_adapter_dir)
        before = row_counts(backend_settings)
        sent, release = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def send() -> None:
            try:
                httpx.post(
                    f"{url}/api/models/{REPO}/commit/main",
                    content=_half_sent_commit(sent, release),
                    headers={"Content-Type": "application/x-ndjson"},
                    timeout=60,
                )
            except httpx.HTTPError as exc:
                errors.append(exc)

        client = threading.Thread(target=send)
        client.start()
        assert sent.wait(30)
        server.kill()
        release.set()
        client.join(60)
        assert errors, "the commit cannot have been answered: its server was killed"

    assert row_counts(backend_settings) == before
    with lorry_process(["serve"], env, tmp_path / "serve-2.log") as server:
        server.wait_until_serving(url)
        api = HfApi(endpoint=url, token=False)
        assert len(api.list_repo_commits(REPO)) == 1
        done = api.upload_file(path_or_fileobj=b"after\n", path_in_repo="after.txt", repo_id=REPO)
        files = {f.rfilename for f in api.model_info(REPO, revision=done.oid).siblings or []}
        assert files == {*directory_files(lora_adapter_dir), "after.txt"}
