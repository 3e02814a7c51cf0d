"""API schemas of the read-only endpoints that the web console needs beyond the rest of the API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from registry.schemas.base import Schema


class WhoAmI(Schema):
    """The caller as the registry sees it: what the console may show and whether to ask for a
    token."""

    mode: Literal["open", "closed"] = Field(
        description="open: no token was ever created, every caller may do everything; "
        "closed: tokens decide"
    )
    principal: str = Field(description="the token's principal, `local` or `anonymous`")
    token_id: str | None
    scopes: list[str] = Field(description="granted scopes, implied ones included")
    namespaces: list[str] = Field(description="namespace patterns the scopes apply to")
    anonymous_read: bool = Field(description="whether callers without a token may read")


class RenderedCard(Schema):
    """A version's model card: front matter as data, the Markdown body as safe HTML."""

    repository: str
    version: int
    path: str | None = Field(description="the card's file (README.md); null when there is none")
    front_matter: dict[str, Any]
    html: str = Field(
        description="the Markdown body rendered with raw HTML disabled (shown as text) and "
        "unsafe link schemes (javascript:, data:, ...) refused"
    )


class AuditFacets(Schema):
    """The distinct actions and actors of the audit events the caller may read."""

    actions: list[str]
    actors: list[str]
