"""The console's server side without a browser: the page and its files at the root, what it must
not shadow, and the read-only endpoints it added (whoami, rendered card, audit facets)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path, PurePosixPath

from fastapi.testclient import TestClient
from sqlmodel import Session

from registry.console import STATIC_DIR
from registry.db import write_transaction
from registry.services.audit import VERSION_PULL, Caller, record_event
from registry.services.console import card_body, render_markdown
from tests.support.rest import API, engine_of, push_ok
from tests.support.tokens import bearer, make_token

ROOT = Path(__file__).resolve().parents[2]
HOSTILE_CARD = """---
license: mit
tags: [sql]
eval: {exact_match: 0.71}
---
# Card

<script>alert(1)</script>
<img src="x" onerror="alert(2)">
[click](javascript:alert(3)) [data](data:text/html;base64,PHNjcmlwdD4=)
[docs](https://example.org/docs)

| a | b |
|---|---|
| 1 | 2 |
"""


def _imports(source: str) -> list[str]:
    return re.findall(r'^import [^;]*? from "\./([\w-]+\.js)";', source, flags=re.MULTILINE)


def test_the_page_and_every_module_it_imports_are_served_with_a_strict_policy(
    sqlite_client: TestClient,
) -> None:
    page = sqlite_client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "object-src 'none'" in policy
    assert "'unsafe-inline'" not in policy
    assert '<script type="module" src="/console/js/app.js">' in page.text
    assert sqlite_client.get("/console/console.css").status_code == 200

    pending, served = ["app.js"], set()
    while pending:
        module = pending.pop()
        if module in served:
            continue
        response = sqlite_client.get(f"/console/js/{module}")
        assert response.status_code == 200, module
        assert "javascript" in response.headers["content-type"]
        assert response.headers["cache-control"] == "no-cache"
        served.add(module)
        pending.extend(_imports(response.text))
    on_disk = {path.name for path in (STATIC_DIR / "js").glob("*.js")}
    assert served == on_disk, "every module is reachable from app.js, and only those exist"


def test_the_console_shadows_none_of_the_routes_at_the_root(
    sqlite_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(sqlite_client, "acme/sql-lora", adapter_files, alias="production")
    config = adapter_files["adapter_config.json"]
    checks = {
        "/healthz": 200,
        "/readyz": 200,
        "/docs": 200,
        "/openapi.json": 200,
        f"{API}/repos": 200,
        f"{API}/whoami": 200,
        "/api/models/acme/sql-lora": 200,
        "/api/models/acme/sql-lora/revision/production": 200,
        "/api/models/acme/sql-lora/tree/main": 200,
        "/api/models/acme/missing": 404,
    }
    for path, status in checks.items():
        response = sqlite_client.get(path)
        assert response.status_code == status, f"{path}: {response.text[:200]}"
        assert not response.text.startswith("<!doctype html>"), path
    resolved = sqlite_client.get("/acme/sql-lora/resolve/production/adapter_config.json")
    assert resolved.status_code == 200 and resolved.content == config
    head = sqlite_client.head("/acme/sql-lora/resolve/main/adapter_config.json")
    assert head.status_code == 200 and head.headers["x-linked-size"] == str(len(config))
    missing = sqlite_client.get("/api/models/acme/missing")
    assert missing.headers["x-error-code"] == "RepoNotFound"
    paths = sqlite_client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not any(path.startswith("/console") for path in paths)
    assert f"{API}/whoami" in paths


def test_whoami_needs_no_scope_and_says_who_calls_and_what_it_may_read(
    sqlite_client: TestClient,
) -> None:
    open_mode = sqlite_client.get(f"{API}/whoami").json()
    assert open_mode == {
        "mode": "open",
        "principal": "local",
        "token_id": None,
        "scopes": ["read", "write", "promote", "admin"],
        "namespaces": ["*"],
        "anonymous_read": True,
    }
    make_token(sqlite_client, ["admin"], principal="ops")
    reader = make_token(sqlite_client, ["read"], ["beta/*"], principal="beta-reader")
    anonymous = sqlite_client.get(f"{API}/whoami").json()
    assert anonymous["mode"] == "closed" and anonymous["principal"] == "anonymous"
    assert anonymous["scopes"] == ["read"]
    limited = sqlite_client.get(f"{API}/whoami", headers=bearer(reader)).json()
    assert limited["principal"] == "beta-reader"
    assert limited["token_id"] == reader.split("_")[1]
    assert (limited["scopes"], limited["namespaces"]) == (["read"], ["beta/*"])

    settings = sqlite_client.app.state.settings  # type: ignore[attr-defined]
    settings.anonymous_read = False
    nobody = sqlite_client.get(f"{API}/whoami")
    assert nobody.status_code == 200, "a caller without a token learns it needs one"
    assert nobody.json()["scopes"] == [] and nobody.json()["anonymous_read"] is False
    assert sqlite_client.get(f"{API}/repos").status_code == 401
    refused = sqlite_client.get(f"{API}/whoami", headers=bearer("lorry_000000000000_nope"))
    assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"


def test_the_model_card_is_rendered_without_raw_html_or_unsafe_links(
    sqlite_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(sqlite_client, "acme/carded", {**adapter_files, "README.md": HOSTILE_CARD.encode()})
    response = sqlite_client.get(f"{API}/repos/acme/carded/versions/latest/card")
    assert response.status_code == 200, response.text
    card = response.json()
    assert card["repository"] == "acme/carded" and card["version"] == 1
    assert card["path"] == "README.md"
    assert card["front_matter"] == {
        "license": "mit",
        "tags": ["sql"],
        "eval": {"exact_match": 0.71},
    }
    html = card["html"]
    assert "<h1>Card</h1>" in html and "<table>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html and "<img" not in html
    assert 'href="javascript:' not in html and 'href="data:' not in html
    assert '<a href="https://example.org/docs">docs</a>' in html
    assert "license: mit" not in html, "the front matter is data, not body text"

    generated = sqlite_client.get(f"{API}/repos/acme/carded/versions/1/card")
    assert generated.status_code == 200
    missing = sqlite_client.get(f"{API}/repos/acme/carded/versions/9/card")
    assert missing.status_code == 404 and missing.json()["code"] == "version_not_found"


def test_a_card_body_starts_after_its_front_matter() -> None:
    assert card_body("---\na: 1\n---\n# Title\n") == "# Title\n"
    assert card_body("\ufeff---\r\na: 1\r\n---\r\nbody") == "body"
    assert card_body("# No front matter\n---\n") == "# No front matter\n---\n"
    assert (
        render_markdown("<b>bold</b> **bold**")
        == "<p>&lt;b&gt;bold&lt;/b&gt; <strong>bold</strong></p>\n"
    )


def test_audit_facets_list_only_the_actions_and_actors_the_caller_may_read(
    sqlite_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(sqlite_client, "acme/sql-lora", adapter_files)
    push_ok(sqlite_client, "beta/chat", adapter_files)
    moved = sqlite_client.put(f"{API}/repos/acme/sql-lora/aliases/staging", json={"version": 1})
    assert moved.status_code == 200, moved.text
    everything = sqlite_client.get(f"{API}/audit/facets").json()
    assert everything == {
        "actions": ["alias.set", "repository.create", "version.publish"],
        "actors": ["local"],
    }
    make_token(sqlite_client, ["admin"], principal="ops")
    reader = make_token(sqlite_client, ["read"], ["beta/*"], principal="beta-reader")
    limited = sqlite_client.get(f"{API}/audit/facets", headers=bearer(reader)).json()
    assert limited == {"actions": ["repository.create", "version.publish"], "actors": ["local"]}
    anonymous = sqlite_client.get(f"{API}/audit/facets").json()
    assert "token.create" in anonymous["actions"] and "local:test" in anonymous["actors"]


def test_audit_kind_leaves_out_or_keeps_only_the_pulls_within_the_callers_scope(
    sqlite_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(sqlite_client, "acme/sql-lora", adapter_files)
    push_ok(sqlite_client, "beta/chat", adapter_files)
    with Session(engine_of(sqlite_client)) as session, write_transaction(session):
        for repository in ("acme/sql-lora", "beta/chat"):  # pulls from before the access log
            record_event(
                session,
                Caller(actor="puller"),
                VERSION_PULL,
                repository=repository,
                target=f"{repository}@1/adapter_config.json",
            )

    def actions(kind: str, headers: dict[str, str] | None = None) -> list[tuple[str, str]]:
        response = sqlite_client.get(
            f"{API}/audit", params={"kind": kind, "limit": 1000}, headers=headers
        )
        assert response.status_code == 200, response.text
        return [(event["action"], event["repository"]) for event in response.json()["items"]]

    everything = actions("all")
    assert ("version.pull", "acme/sql-lora") in everything
    assert ("version.publish", "acme/sql-lora") in everything
    assert all(action != "version.pull" for action, _ in actions("mutation"))
    assert sorted(actions("mutation") + actions("pull")) == sorted(everything)
    assert sorted(actions("pull")) == [
        ("version.pull", "acme/sql-lora"),
        ("version.pull", "beta/chat"),
    ]
    facets = sqlite_client.get(f"{API}/audit/facets", params={"kind": "mutation"}).json()
    assert "version.pull" not in facets["actions"] and "puller" not in facets["actors"]
    assert "version.pull" in sqlite_client.get(f"{API}/audit/facets").json()["actions"]

    make_token(sqlite_client, ["admin"], principal="ops")
    reader = bearer(make_token(sqlite_client, ["read"], ["beta/*"], principal="beta-reader"))
    assert actions("pull", reader) == [("version.pull", "beta/chat")]
    assert {repository for _, repository in actions("mutation", reader)} == {"beta/chat"}
    refused = sqlite_client.get(f"{API}/audit", params={"kind": "pulls"})
    assert refused.status_code == 422, refused.text


def test_every_static_file_is_in_the_package_data() -> None:
    """The console must work from an installed wheel, not only from a checkout."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["registry.console"]
    files = [
        PurePosixPath(path.relative_to(STATIC_DIR.parent).as_posix())
        for path in STATIC_DIR.rglob("*")
        if path.is_file()
    ]
    assert files
    unpackaged = [
        str(path)
        for path in files
        if not any(
            path.match(pattern) and len(path.parts) == len(PurePosixPath(pattern).parts)
            for pattern in patterns
        )
    ]
    assert unpackaged == []
