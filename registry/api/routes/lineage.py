from __future__ import annotations

from fastapi import APIRouter

from registry.api.access import VisibilityDep
from registry.api.deps import SessionDep
from registry.schemas.compose import DerivedList, LineageNode
from registry.services import lineage

router = APIRouter(prefix="/repos/{namespace}/{name}/versions", tags=["lineage"])


@router.get("/{ref}/lineage")
def get_lineage(
    session: SessionDep, visible: VisibilityDep, namespace: str, name: str, ref: str
) -> LineageNode:
    return lineage.get_lineage(session, namespace, name, ref, visible)


@router.get("/{ref}/derived")
def get_derived(
    session: SessionDep, visible: VisibilityDep, namespace: str, name: str, ref: str
) -> DerivedList:
    return lineage.get_derived(session, namespace, name, ref, visible)
