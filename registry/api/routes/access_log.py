from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from registry.api.access import VisibilityDep
from registry.api.deps import SessionDep
from registry.schemas.access import AccessList
from registry.services import access_log

router = APIRouter(prefix="/access-log", tags=["access log"])


@router.get("")
def query_access_log(
    session: SessionDep,
    visible: VisibilityDep,
    repository: str | None = None,
    version: int | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AccessList:
    """Downloads (files handed out), newest first, of the repositories the caller may read;
    written in batches, so the last second may not be there yet."""
    return access_log.query_access(
        session,
        repository=repository,
        version=version,
        actor=actor,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
        visible=visible,
    )
