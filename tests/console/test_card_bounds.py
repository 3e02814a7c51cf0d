"""The console's rendered model card costs little however large the card: the body is rendered
up to ``MAX_RENDERED_CHARS`` with a note saying where the rest is, and a card is rendered once
per content (its sha256), not on every view."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from registry.services import console
from registry.services.console import MAX_RENDERED_CHARS, bounded_body, card_body
from tests.support.rest import API, push_ok

FRONT_MATTER = "---\nlicense: mit\n---\n"


def test_a_card_body_larger_than_the_cap_is_cut_at_a_line_with_a_note(
    sqlite_client: TestClient, adapter_files: dict[str, bytes]
) -> None:
    line = "A paragraph of the card that goes on for a while. " * 2 + "\n\n"
    body = "# Huge card\n\n" + line * (3 * MAX_RENDERED_CHARS // len(line))
    card = (FRONT_MATTER + body + "THE-LAST-LINE\n").encode()
    push_ok(sqlite_client, "acme/huge-card", {**adapter_files, "README.md": card})
    response = sqlite_client.get(f"{API}/repos/acme/huge-card/versions/1/card")
    assert response.status_code == 200, response.text
    html = response.json()["html"]
    assert "<h1>Huge card</h1>" in html
    assert "THE-LAST-LINE" not in html
    assert "download README.md to read the rest" in html
    assert len(html) < 2 * MAX_RENDERED_CHARS
    assert response.json()["front_matter"] == {"license": "mit"}


def test_a_card_is_rendered_once_per_content(
    sqlite_client: TestClient, adapter_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    card = (FRONT_MATTER + "# Rendered once\n").encode()
    push_ok(sqlite_client, "acme/carded-once", {**adapter_files, "README.md": card})
    push_ok(sqlite_client, "acme/carded-twice", {**adapter_files, "README.md": card})
    rendered: list[str] = []
    real = console.render_markdown

    def counting(body: str) -> str:
        rendered.append(body)
        return real(body)

    monkeypatch.setattr(console, "render_markdown", counting)
    for repo in ("acme/carded-once", "acme/carded-twice", "acme/carded-once"):
        response = sqlite_client.get(f"{API}/repos/{repo}/versions/1/card")
        assert response.status_code == 200, response.text
        assert "<h1>Rendered once</h1>" in response.json()["html"]
    assert rendered == ["# Rendered once\n"]


def test_a_small_body_is_rendered_whole_and_the_front_matter_rules_hold() -> None:
    assert bounded_body("# Title\n") == "# Title\n"
    assert card_body("---\r\na: 1\r\n--- \r\nbody") == "body"
    assert card_body("---\na: 1\n") == ""
    assert card_body("---") == ""
    assert card_body("\ufeff# No front matter") == "# No front matter"
