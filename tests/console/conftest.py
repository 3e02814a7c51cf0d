"""A live registry with real adapters, alias moves and compositions, and headless Chromium.

One server and one browser per module: the browser tests read the same seeded
registry, page by page, and the last ones turn tokens on.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry import db
from registry.config import Settings
from tests.factories import build_lora_adapter
from tests.registry.conftest import (  # noqa: F401  (fixtures shared with the registry tests)
    adapter_files,
    directory_files,
    push_ok,
    sqlite_client,
    sqlite_settings,
)
from tests.servers import unavailable
from tests.trust.conftest import LiveServer, start_live_server

API = "/api/v1"
SHOTS_DIR = Path("/tmp/console-shots")
"""Screenshots are copied here too, for a person to look at after the run."""
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--window-size=1400,1000",
)
FINISHED = ("succeeded", "failed", "cancelled")

CARD = """---
license: apache-2.0
library_name: peft
tags: [sql, text-to-sql]
language: [en]
datasets: [spider]
---
# SQL generator

Turns questions into **SQL** queries.

| metric | v1 |
|---|---|
| exact match | 0.71 |

<script>window.cardScriptRan = true</script>
<img src="x" onerror="window.cardScriptRan = true">
[run me](javascript:window.cardScriptRan=true)
"""
"""A model card with front matter, a table, and raw HTML that must never execute."""

PRODUCTION_MOVES = (
    (1, "first release"),
    (2, "beats v1 on the SQL eval"),
    (1, "rollback: v2 regressed on joins"),
    (3, "v3 fixes joins"),
)


@dataclass
class SeededRegistry:
    server: LiveServer
    production_history: list[dict[str, Any]]
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url


def wait_for_job(http: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = http.get(f"{API}/jobs/{job_id}").json()
        if job["state"] in FINISHED:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']}: {job['log']}"
        time.sleep(0.1)


def compose(
    http: httpx.Client, inputs: list[tuple[str, float]], target: str, **body: Any
) -> dict[str, Any]:
    recipe = {
        "method": "linear",
        "inputs": [{"adapter": ref, "weight": weight} for ref, weight in inputs],
        "output": {"type": "adapter", "rank": 8},
        "device": "cpu",
    }
    response = http.post(f"{API}/compositions", json={"recipe": recipe, "target": target, **body})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def _adapters(root: Path, tiny_llama_dir: Path) -> dict[str, dict[str, bytes]]:
    specs = {"sql-gen": (8, 11), "formal-tone": (4, 12), "toxic": (4, 13)}
    files = {
        name: directory_files(build_lora_adapter(tiny_llama_dir, root / name, r=r, seed=seed))
        for name, (r, seed) in specs.items()
    }
    off_base = dict(files["formal-tone"])
    config = json.loads(off_base["adapter_config.json"])
    config["base_model_name_or_path"] = "other-org/other-base"
    off_base["adapter_config.json"] = json.dumps(config).encode()
    files["off-base"] = off_base
    return files


def _seed(
    server: LiveServer, http: httpx.Client, adapters: dict[str, dict[str, bytes]]
) -> SeededRegistry:
    versions: dict[str, dict[str, Any]] = {}
    sql = adapters["sql-gen"]
    versions["sql-gen@1"] = push_ok(
        http, "acme/sql-gen", {**sql, "README.md": CARD.encode()}, message="first SQL adapter"
    )
    for number in (2, 3):
        versions[f"sql-gen@{number}"] = push_ok(
            http,
            "acme/sql-gen",
            {**sql, "README.md": CARD.encode(), "notes.txt": f"v{number}".encode()},
            message=f"SQL adapter, data round {number}",
        )
    for name in ("formal-tone", "toxic", "off-base"):
        versions[f"{name}@1"] = push_ok(http, f"acme/{name}", adapters[name])
    versions["chat-tone@1"] = push_ok(http, "beta/chat-tone", adapters["formal-tone"])
    tagged = http.patch(
        f"{API}/repos/acme/sql-gen",
        json={"description": "Text to SQL for the analytics team", "tags": ["sql", "analytics"]},
    )
    assert tagged.status_code == 200, tagged.text
    for version, reason in PRODUCTION_MOVES:
        moved = http.put(
            f"{API}/repos/acme/sql-gen/aliases/production",
            json={"version": version, "reason": reason},
        )
        assert moved.status_code == 200, moved.text
        time.sleep(0.05)  # distinct instants, so that a time between two moves exists
    history = http.get(f"{API}/repos/acme/sql-gen/aliases/production/history").json()["items"]

    registry = SeededRegistry(server=server, production_history=history, versions=versions)
    formal = compose(
        http,
        [("acme/sql-gen@1", 1.0), ("acme/formal-tone@1", 0.6)],
        "acme/sql-formal",
        alias="production",
        message="SQL skill in a formal tone",
    )
    registry.jobs["sql-formal"] = wait_for_job(http, formal["id"])
    safe = compose(http, [("acme/sql-formal@1", 1.0), ("acme/toxic@1", -0.4)], "acme/sql-safe")
    registry.jobs["sql-safe"] = wait_for_job(http, safe["id"])
    broken = compose(http, [("acme/sql-gen@1", 1.0), ("acme/off-base@1", 0.5)], "acme/broken")
    registry.jobs["broken"] = wait_for_job(http, broken["id"])
    assert registry.jobs["sql-formal"]["state"] == "succeeded", registry.jobs["sql-formal"]
    assert registry.jobs["sql-safe"]["state"] == "succeeded", registry.jobs["sql-safe"]
    assert registry.jobs["broken"]["state"] == "failed", registry.jobs["broken"]
    return registry


@pytest.fixture(scope="module")
def seeded_registry(
    tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path
) -> Iterator[SeededRegistry]:
    """A live registry (SQLite + disk, jobs run in the server) with real pushed adapters, four
    moves of acme/sql-gen's `production`, two compositions (one of a composition) and a
    composition that failed."""
    root = tmp_path_factory.mktemp("console")
    settings = Settings(home=root / "home", database_url=None, blob_url=None)
    settings.job_heartbeat_s = 0.5
    db.upgrade(settings)
    server = start_live_server(settings)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            registry = _seed(server, http, _adapters(root / "adapters", tiny_llama_dir))
        yield registry
    finally:
        server.stop()


@pytest.fixture(scope="module")
def downloads_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-downloads")


@pytest.fixture(scope="module")
def browser(downloads_dir: Path) -> Iterator[Any]:
    """Headless Chromium driven by chromedriver (both from the system; nothing downloaded);
    files the pages download land in ``downloads_dir``."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        unavailable(
            "the browser tests need Chromium and chromedriver on PATH "
            "(Debian: apt-get install chromium chromium-driver)"
        )
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("the browser tests need selenium (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads_dir), "download.prompt_for_download": False},
    )
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    except WebDriverException as exc:
        unavailable(f"could not start headless Chromium ({chromium}, {chromedriver}): {exc.msg}")
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-screenshots")
