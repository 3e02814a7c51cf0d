"""What an alias pointed to at a moment in the past, answered from the audit log."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session, col, select

from registry.schemas.trust import AliasAt
from registry.services.aliases import alias_target
from registry.services.audit import ALIAS_DELETE, ALIAS_SET
from registry.services.names import check_alias_name, repository_id
from registry.services.repositories import find_repository
from registry.tables import AuditEvent, Version


def alias_at(session: Session, namespace: str, name: str, alias: str, when: datetime) -> AliasAt:
    """The version ``alias`` of ``namespace/name`` pointed to at ``when`` (naive: UTC).

    The answer is the newest ``alias.set`` / ``alias.delete`` event at or before
    ``when``; ``version`` is ``None`` when the alias did not exist then.
    """
    check_alias_name(alias)
    repository = find_repository(session, namespace, name)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    repo_id = repository_id(namespace, name)
    event = session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.repository == repo_id,
            AuditEvent.target == alias_target(repo_id, alias),
            col(AuditEvent.action).in_((ALIAS_SET, ALIAS_DELETE)),
            col(AuditEvent.at) <= when,
        )
        .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
        .limit(1)
    ).first()
    number = (event.after or {}).get("version") if event is not None else None
    digest = None
    if isinstance(number, int):
        version = session.exec(
            select(Version).where(Version.repository_id == repository.id, Version.number == number)
        ).first()
        digest = f"sha256:{version.digest}" if version is not None else None
    else:
        number = None
    return AliasAt(
        repository=repo_id,
        alias=alias,
        time=when,
        version=number,
        digest=digest,
        since=event.at if event is not None else None,
        actor=event.actor if event is not None else None,
        reason=(event.after or {}).get("reason") if event is not None else None,
        event_id=event.id if event is not None else None,
    )
