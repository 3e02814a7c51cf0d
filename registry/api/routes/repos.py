from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from registry.api.access import VisibilityDep
from registry.api.deps import SessionDep
from registry.schemas.repos import Kind, Repo, RepoList
from registry.services import repositories

router = APIRouter(prefix="/repos", tags=["repositories"])


@router.get("")
def list_repositories(
    session: SessionDep,
    visible: VisibilityDep,
    q: str | None = None,
    namespace: str | None = None,
    base_model: str | None = None,
    tag: str | None = None,
    kind: Kind | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    archived: Annotated[bool, Query(description="include archived repositories")] = False,
) -> RepoList:
    return repositories.list_repositories(
        session,
        q=q,
        namespace=namespace,
        base_model=base_model,
        tag=tag,
        kind=kind,
        limit=limit,
        offset=offset,
        visible=visible,
        archived=archived,
    )


@router.get("/{namespace}/{name}")
def get_repository(session: SessionDep, namespace: str, name: str) -> Repo:
    return repositories.get_repository(session, namespace, name)
