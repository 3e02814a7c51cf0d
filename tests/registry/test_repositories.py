"""Listing and searching repositories."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support.rest import API, push_ok


def _card(tags: list[str], base_model: str = "meta-llama/Llama-3.1-8B") -> bytes:
    lines = "\n".join(f"- {tag}" for tag in tags)
    return (
        f"---\nbase_model: {base_model}\nlibrary_name: peft\ntags:\n{lines}\n---\n# card\n".encode()
    )


def _ids(client: TestClient, **params: str) -> list[str]:
    response = client.get(f"{API}/repos", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] >= len(body["items"])
    return [item["id"] for item in body["items"]]


def test_repositories_are_found_by_text_namespace_tag_and_base_model(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, "acme/sql-gen", {**adapter_files, "README.md": _card(["sql", "text2sql"])})
    push_ok(client, "acme/formal-tone", {**adapter_files, "README.md": _card(["tone"])})
    push_ok(client, "umbrella/sql-fix", {**adapter_files, "README.md": _card(["fixes"])})

    assert _ids(client) == ["acme/formal-tone", "acme/sql-gen", "umbrella/sql-fix"]
    assert _ids(client, q="sql") == ["acme/sql-gen", "umbrella/sql-fix"]
    assert _ids(client, q="TEXT2SQL") == ["acme/sql-gen"]
    assert _ids(client, namespace="acme") == ["acme/formal-tone", "acme/sql-gen"]
    assert _ids(client, tag="tone") == ["acme/formal-tone"]
    assert _ids(client, tag="sql") == ["acme/sql-gen"]
    assert _ids(client, kind="model") == []
    # The adapters' base is a local directory: searchable, never shown as the base model.
    assert client.get(f"{API}/repos/acme/sql-gen").json()["base_model"] is None
    version = client.get(f"{API}/repos/acme/sql-gen/versions/latest").json()
    base = version["metadata"]["base_model_name_or_path"]
    assert base
    assert len(_ids(client, base_model=base)) == 3
    assert _ids(client, base_model="other/base") == []
    page = client.get(f"{API}/repos", params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 3
    assert [item["id"] for item in page["items"]] == ["acme/sql-gen"]


def test_repository_shows_latest_version_aliases_and_creator(
    client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    push_ok(client, "acme/sql-gen", adapter_files, alias="production")
    repo = client.get(f"{API}/repos/acme/sql-gen").json()
    assert repo["id"] == "acme/sql-gen"
    assert repo["kind"] == "adapter"
    assert repo["latest_version"] == 1
    assert repo["aliases"] == {"production": 1}
    assert repo["created_by"] == "local"
    assert repo["created_at"].endswith("Z") or "+00:00" in repo["created_at"]


def test_unknown_repository_is_404_with_a_hint(client: TestClient) -> None:
    response = client.get(f"{API}/repos/acme/nothing")
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "repository_not_found"
    assert "acme/nothing" in body["message"]
