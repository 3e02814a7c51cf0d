from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from registry.api.access import VisibilityDep
from registry.api.deps import SessionDep
from registry.schemas.repos import AuditList
from registry.services import audit
from registry.services.audit import AuditKind

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("")
def query_audit(
    session: SessionDep,
    visible: VisibilityDep,
    repository: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    kind: AuditKind = "all",
) -> AuditList:
    """Audit events, newest first; ``since`` is inclusive, ``until`` exclusive (ISO 8601,
    UTC when no offset is given); ``kind=mutation`` leaves out pulls (``version.pull``),
    ``kind=pull`` keeps only them."""
    return audit.query_audit(
        session,
        repository=repository,
        action=action,
        actor=actor,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
        visible=visible,
        kind=kind,
    )
