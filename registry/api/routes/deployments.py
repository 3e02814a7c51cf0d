"""Deployment targets: servers that follow an alias of a repository."""

from __future__ import annotations

from fastapi import APIRouter, Response

from registry.api.access import VisibilityDep
from registry.api.deps import CallerDep, SessionDep
from registry.api.routes.webhooks import EgressDep
from registry.schemas.outbox import DeploymentCreate, DeploymentList, DeploymentOut
from registry.services import deployments

router = APIRouter(tags=["deployments"])
_REPO = "/repos/{namespace}/{name}/deployments"


@router.get("/deployments")
def list_all_deployments(session: SessionDep, visible: VisibilityDep) -> DeploymentList:
    return deployments.list_deployments(session, visible=visible)


@router.get(_REPO)
def list_deployments(session: SessionDep, namespace: str, name: str) -> DeploymentList:
    return deployments.list_deployments(session, repository=f"{namespace}/{name}")


@router.post(_REPO, status_code=201)
def add_deployment(
    session: SessionDep,
    caller: CallerDep,
    rules: EgressDep,
    namespace: str,
    name: str,
    body: DeploymentCreate,
) -> DeploymentOut:
    return deployments.add_deployment(session, namespace, name, body, rules, caller)


@router.get(_REPO + "/{deployment_id}")
def get_deployment(
    session: SessionDep, namespace: str, name: str, deployment_id: int
) -> DeploymentOut:
    return deployments.get_deployment(session, namespace, name, deployment_id)


@router.delete(_REPO + "/{deployment_id}", status_code=204, response_class=Response)
def remove_deployment(
    session: SessionDep, caller: CallerDep, namespace: str, name: str, deployment_id: int
) -> Response:
    deployments.remove_deployment(session, namespace, name, deployment_id, caller)
    return Response(status_code=204)
