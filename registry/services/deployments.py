"""Deployment targets: servers that follow an alias (``registry.services.target_kinds``).

Adding a target queues a rollout of the version the alias points at now; every later
move of the alias queues another (``registry.services.outbox``). Removing a target
stops following; it does not touch what the server serves.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from registry.db import begin_write
from registry.errors import Conflict, DeploymentNotFound, LorryError
from registry.schemas.outbox import DeploymentCreate, DeploymentList, DeploymentOut
from registry.services.audit import Caller, record_event
from registry.services.egress import EgressRules, check_destination
from registry.services.names import check_alias_name, repository_id
from registry.services.outbox import request_rollout
from registry.services.refs import resolve_ref
from registry.services.repositories import find_repository, lock_repository
from registry.services.target_kinds import target_kind
from registry.services.visibility import EVERYTHING, Visibility
from registry.services.webhook_signing import new_secret
from registry.tables import DeploymentTarget, OutboxDelivery, utcnow

DEPLOYMENT_ADD = "deployment.add"
DEPLOYMENT_REMOVE = "deployment.remove"


def _alias_version(session: Session, row: DeploymentTarget) -> int | None:
    namespace, name = row.repository.split("/", 1)
    try:
        return resolve_ref(session, find_repository(session, namespace, name), row.alias).number
    except LorryError:
        return None


def deployment_out(session: Session, row: DeploymentTarget) -> DeploymentOut:
    assert row.id is not None
    pending = session.exec(
        select(func.count())
        .select_from(OutboxDelivery)
        .where(OutboxDelivery.target_id == row.id, OutboxDelivery.state == "pending")
    ).one()
    return DeploymentOut(
        id=row.id,
        repository=row.repository,
        alias=row.alias,
        kind=row.kind,
        url=row.url,
        lora_name=row.lora_name,
        alias_version=_alias_version(session, row),
        served_version=row.served_version,
        served_digest=row.served_digest,
        served_since=row.served_since,
        last_error=row.last_error,
        last_attempt_at=row.last_attempt_at,
        pending=pending,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def add_deployment(
    session: Session,
    namespace: str,
    name: str,
    request: DeploymentCreate,
    rules: EgressRules,
    caller: Caller,
) -> DeploymentOut:
    check_alias_name(request.alias)
    kind = target_kind(request.kind)
    check_destination(request.url, rules)
    repo_id = repository_id(namespace, name)
    begin_write(session)
    try:
        repository = lock_repository(session, namespace, name)
        kind.check_target(session, repository, request.alias)
        duplicate = session.exec(
            select(DeploymentTarget).where(
                DeploymentTarget.url == request.url,
                DeploymentTarget.lora_name == request.lora_name,
            )
        ).first()
        if duplicate is not None:
            raise Conflict(
                f"{request.url} already serves {request.lora_name!r} for "
                f"{duplicate.repository}@{duplicate.alias} (deployment {duplicate.id}); "
                f"remove it first with `lorry deploy rm {duplicate.repository} {duplicate.id}`"
            )
        row = DeploymentTarget(
            repository=repo_id,
            alias=request.alias,
            kind=kind.name,
            url=request.url,
            lora_name=request.lora_name,
            secret=new_secret() if kind.signs else None,
            created_by=caller.actor,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        record_event(
            session,
            caller,
            DEPLOYMENT_ADD,
            repository=repo_id,
            target=f"deployment:{row.id}",
            after={
                "alias": row.alias,
                "kind": row.kind,
                "url": row.url,
                "lora_name": row.lora_name,
            },
        )
        current = _alias_version(session, row)
        if current is not None:
            request_rollout(session, row, current, actor=caller.actor, request_id=caller.request_id)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(
            f"{request.url} already serves {request.lora_name!r}; list targets with "
            "`lorry deploy ls`"
        ) from exc
    except BaseException:
        session.rollback()
        raise
    created = deployment_out(session, row)
    created.secret = row.secret
    return created


def list_deployments(
    session: Session,
    *,
    repository: str | None = None,
    visible: Visibility = EVERYTHING,
) -> DeploymentList:
    conditions = [visible.where(col(DeploymentTarget.repository), repository=True)]
    if repository is not None:
        conditions.append(col(DeploymentTarget.repository) == repository)
    rows = session.exec(
        select(DeploymentTarget).where(*conditions).order_by(col(DeploymentTarget.id))
    ).all()
    return DeploymentList(items=[deployment_out(session, row) for row in rows])


def _find_deployment(
    session: Session, namespace: str, name: str, deployment_id: int
) -> DeploymentTarget:
    row = session.get(DeploymentTarget, deployment_id)
    repo_id = repository_id(namespace, name)
    if row is None or row.repository != repo_id:
        raise DeploymentNotFound(
            f"{repo_id} has no deployment target {deployment_id}; list them with "
            f"`lorry deploy ls {repo_id}`"
        )
    return row


def get_deployment(
    session: Session, namespace: str, name: str, deployment_id: int
) -> DeploymentOut:
    return deployment_out(session, _find_deployment(session, namespace, name, deployment_id))


def remove_deployment(
    session: Session, namespace: str, name: str, deployment_id: int, caller: Caller
) -> None:
    begin_write(session)
    try:
        row = _find_deployment(session, namespace, name, deployment_id)
        session.delete(row)
        record_event(
            session,
            caller,
            DEPLOYMENT_REMOVE,
            repository=row.repository,
            target=f"deployment:{row.id}",
            before={"alias": row.alias, "url": row.url, "lora_name": row.lora_name},
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
