"""The repository page shows, beside each alias, what its deployment targets serve."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry import db
from registry.config import Settings
from tests.serving.receiver import Receiver, receiving
from tests.support.live import LiveServer, start_live_server
from tests.support.rest import API, push_ok, with_extra

SHOTS_DIR = Path(tempfile.gettempdir()) / "console-shots"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def serving_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(
        home=tmp_path_factory.mktemp("console-serving"),
        webhook_allow_cidrs="127.0.0.0/8",
        outbox_poll_s=0.1,
    )
    db.upgrade(settings)
    server = start_live_server(settings)
    try:
        yield server
    finally:
        server.stop()


def test_the_alias_table_shows_what_each_target_serves_and_since_when(
    browser: Any,
    shots_dir: Path,
    serving_live: LiveServer,
    adapter_files: dict[str, bytes],
) -> None:
    from tests.console.browsing import Console

    with httpx.Client(base_url=serving_live.url, timeout=30) as http, receiving(Receiver()) as vllm:
        push_ok(http, "acme/sql", adapter_files, alias="production")
        push_ok(http, "acme/sql", with_extra(adapter_files, "notes.txt", b"v2"))
        assert http.patch(f"{API}/repos/acme/sql", json={"main_alias": "production"}).is_success
        body = {"alias": "production", "url": vllm.url, "lora_name": "sql"}
        response = http.post(f"{API}/repos/acme/sql/deployments", json=body)
        assert response.status_code == 201, response.text
        target = response.json()["id"]
        deadline = time.monotonic() + 30
        while http.get(f"{API}/repos/acme/sql/deployments/{target}").json()["served_version"] != 1:
            assert time.monotonic() < deadline, "the rollout of v1 did not finish"
            time.sleep(0.1)

        console = Console(browser, serving_live.url, shots_dir, SHOTS_DIR)
        console.open("/repos/acme/sql")
        aliases = console.text("section[aria-labelledby=aliases-heading]")
        assert f"vllm at {vllm.url} (sql) serves v1 since" in aliases
        assert "last error" not in aliases
        console.screenshot("serving-alias")
        assert console.script_errors() == []
