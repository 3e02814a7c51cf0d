"""The console tests' registry: real adapters pushed, four moves of an alias, compositions
(one of a composition, one that fails), served live."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session

from registry import db
from registry.config import Settings
from registry.services.audit import VERSION_PULL, Caller, record_event
from tests.support.live import LiveServer, serving
from tests.support.rest import API, database_engine, push_ok, wait_for_job

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


def _with_off_base(skills: dict[str, dict[str, bytes]]) -> dict[str, dict[str, bytes]]:
    """The skill adapters and ``off-base``: the tone adapter claiming another base model."""
    files = dict(skills)
    off_base = dict(files["formal-tone"])
    config = json.loads(off_base["adapter_config.json"])
    config["base_model_name_or_path"] = "other-org/other-base"
    off_base["adapter_config.json"] = json.dumps(config).encode()
    files["off-base"] = off_base
    return files


def _seed_main_alias(
    http: httpx.Client, adapters: dict[str, dict[str, bytes]], versions: dict[str, dict[str, Any]]
) -> None:
    """acme/summarizer: two versions; Hugging Face `main` follows `production`, which points
    at v1, so what `main` serves is not the latest version."""
    for number, name in ((1, "formal-tone"), (2, "toxic")):
        versions[f"summarizer@{number}"] = push_ok(
            http, "acme/summarizer", adapters[name], message=f"summarizer round {number}"
        )
    moved = http.put(
        f"{API}/repos/acme/summarizer/aliases/production",
        json={"version": 1, "reason": "v2 is still under review"},
    )
    assert moved.status_code == 200, moved.text
    main = http.patch(f"{API}/repos/acme/summarizer", json={"main_alias": "production"})
    assert main.status_code == 200, main.text


SEEDED_PULLS = (
    ("acme/summarizer", 1, "adapter_config.json"),
    ("acme/summarizer", 1, "adapter_model.safetensors"),
    ("acme/summarizer", 2, "adapter_config.json"),
)
"""Files downloaded once each while seeding (the access log's pulls)."""


def _seed_pulls(server: LiveServer, http: httpx.Client) -> None:
    """The pulls of ``SEEDED_PULLS`` (access log), and one pull recorded the way registries
    did before the access log existed: a ``version.pull`` audit event."""
    for repository, version, path in SEEDED_PULLS:
        pulled = http.get(f"{API}/repos/{repository}/versions/{version}/files/{path}")
        assert pulled.status_code == 200, pulled.text
    server.server.config.app.state.access_log.flush()
    with (
        database_engine(server.settings) as engine,
        Session(engine) as session,
        db.write_transaction(session),
    ):
        record_event(
            session,
            Caller(actor="legacy-puller"),
            VERSION_PULL,
            repository="acme/summarizer",
            target="acme/summarizer@1/adapter_config.json",
        )


def _seed(
    server: LiveServer, http: httpx.Client, adapters: dict[str, dict[str, bytes]]
) -> SeededRegistry:
    adapters = _with_off_base(adapters)
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
    _seed_main_alias(http, adapters, versions)
    _seed_pulls(server, http)

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


@contextmanager
def seeded_registry_at(root: Path, skills: dict[str, dict[str, bytes]]) -> Iterator[SeededRegistry]:
    """A live registry (SQLite + disk under ``root``, jobs run in the server) with real pushed
    adapters, four moves of acme/sql-gen's `production`, two compositions (one of a
    composition) and a composition that failed."""
    settings = Settings(home=root / "home", database_url=None, blob_url=None)
    settings.job_heartbeat_s = 0.5
    db.upgrade(settings)
    with serving(settings) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        yield _seed(server, http, skills)
