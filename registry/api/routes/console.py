"""Read-only endpoints for the web console (``registry/console``); any client may use them."""

from __future__ import annotations

from fastapi import APIRouter

from registry.api.access import VisibilityDep
from registry.api.deps import BlobStoreDep, PrincipalDep, SessionDep, SettingsDep
from registry.schemas.console import AuditFacets, RenderedCard, WhoAmI
from registry.services import console
from registry.services.audit import AuditKind

router = APIRouter(tags=["console"])


@router.get("/whoami")
def whoami(session: SessionDep, principal: PrincipalDep, settings: SettingsDep) -> WhoAmI:
    """The caller (the bearer token's principal, `local` or `anonymous`) and what it may read.
    Needs no scope: it is how a client learns that it needs a token."""
    return console.who_am_i(session, principal, settings)


@router.get("/repos/{namespace}/{name}/versions/{ref}/card")
def rendered_card(
    session: SessionDep,
    store: BlobStoreDep,
    settings: SettingsDep,
    namespace: str,
    name: str,
    ref: str,
) -> RenderedCard:
    """The version's model card: front matter as data, the Markdown body as HTML that is safe to
    insert (raw HTML in the card is shown as text)."""
    return console.rendered_card(session, store, settings, namespace, name, ref)


@router.get("/audit/facets")
def audit_facets(
    session: SessionDep, visible: VisibilityDep, kind: AuditKind = "all"
) -> AuditFacets:
    """The distinct actions and actors of the audit events the caller may read (for filters);
    ``kind`` as for ``GET /audit``."""
    return console.audit_facets(session, visible, kind)
