from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from registry.api.deps import CallerDep, SessionDep
from registry.schemas.lifecycle import ArchiveRequest, DeletionOut
from registry.schemas.repos import Repo
from registry.services import lifecycle

router = APIRouter(prefix="/repos/{namespace}/{name}", tags=["repositories"])

Reason = Annotated[str, Query(min_length=1, max_length=10_000, description="why (audited)")]


@router.post("/archive")
def archive_repository(
    session: SessionDep, caller: CallerDep, namespace: str, name: str, body: ArchiveRequest
) -> Repo:
    """Archive (``promote`` or ``admin``): read only and left out of listings; every
    version still pulls by number, digest and alias."""
    return lifecycle.archive_repository(session, caller, namespace, name, body.reason)


@router.post("/unarchive")
def unarchive_repository(
    session: SessionDep, caller: CallerDep, namespace: str, name: str, body: ArchiveRequest
) -> Repo:
    return lifecycle.unarchive_repository(session, caller, namespace, name, body.reason)


@router.delete("")
def delete_repository(
    session: SessionDep, caller: CallerDep, namespace: str, name: str, reason: Reason
) -> DeletionOut:
    """Delete the repository and every version (``admin``, with a reason); refused while
    aliases, derived versions, deployments or open jobs depend on it."""
    return lifecycle.delete_repository(session, caller, namespace, name, reason)


@router.delete("/versions/{ref}")
def delete_version(
    session: SessionDep, caller: CallerDep, namespace: str, name: str, ref: str, reason: Reason
) -> DeletionOut:
    """Delete one version, named by its number (``admin``, with a reason); refused while an
    alias points at it or another version derives from it."""
    return lifecycle.delete_version(session, caller, namespace, name, ref, reason)
