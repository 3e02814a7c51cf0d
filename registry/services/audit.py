"""The audit log: append events inside the caller's transaction, and query them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func
from sqlmodel import Session, col, select

from registry.schemas.repos import AuditEventOut, AuditList
from registry.services.audit_chain import defer_event
from registry.services.outbox import enqueue_for_event
from registry.services.principals import LOCAL, Principal
from registry.services.visibility import EVERYTHING, Visibility
from registry.tables import AuditEvent, utcnow

REPOSITORY_CREATE = "repository.create"
VERSION_PUBLISH = "version.publish"
ALIAS_SET = "alias.set"
ALIAS_DELETE = "alias.delete"
REPOSITORY_UPDATE = "repository.update"
VERSION_PULL = "version.pull"
REPOSITORY_ARCHIVE = "repository.archive"
REPOSITORY_UNARCHIVE = "repository.unarchive"
REPOSITORY_DELETE = "repository.delete"
VERSION_DELETE = "version.delete"
ACTIONS = (
    REPOSITORY_CREATE,
    REPOSITORY_UPDATE,
    VERSION_PUBLISH,
    VERSION_PULL,
    ALIAS_SET,
    ALIAS_DELETE,
    REPOSITORY_ARCHIVE,
    REPOSITORY_UNARCHIVE,
    REPOSITORY_DELETE,
    VERSION_DELETE,
)
PULL_ACTIONS = (VERSION_PULL,)
"""Actions that record a read, not a change (pulls before the access log existed)."""
AuditKind = Literal["all", "mutation", "pull"]
"""Which events an audit query keeps: every one, the changes only, or the pulls only."""


def kind_condition(kind: AuditKind) -> Any:
    """The WHERE clause keeping the events of ``kind`` (``None`` for ``all``)."""
    if kind == "mutation":
        return col(AuditEvent.action).not_in(PULL_ACTIONS)
    if kind == "pull":
        return col(AuditEvent.action).in_(PULL_ACTIONS)
    return None


@dataclass(frozen=True)
class Caller:
    """Who asks, and under which request id: what every audit event records."""

    actor: str
    request_id: str | None = None
    principal: Principal = LOCAL
    """What the caller may do (``registry.services.principals``); everything by default."""


def record_event(
    session: Session,
    caller: Caller,
    action: str,
    *,
    repository: str | None,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Queue an event in the session; it commits (or vanishes) with the change it records.

    The event is chained (``prev_hash``, ``hash``) and inserted when the session
    commits; see ``registry.services.audit_chain``. The webhook deliveries and
    deployment rollouts it causes join the same transaction (``registry.services.outbox``).
    """
    event = AuditEvent(
        at=utcnow(),
        actor=caller.actor,
        action=action,
        repository=repository,
        target=target,
        before=before,
        after=after,
        request_id=caller.request_id,
    )
    defer_event(session, event)
    enqueue_for_event(session, event)
    return event


def audit_event_out(event: AuditEvent) -> AuditEventOut:
    assert event.id is not None
    return AuditEventOut(
        id=event.id,
        at=event.at,
        actor=event.actor,
        action=event.action,
        repository=event.repository,
        target=event.target,
        before=event.before,
        after=event.after,
        request_id=event.request_id,
        hash=event.hash,
    )


def query_audit(
    session: Session,
    *,
    repository: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    visible: Visibility = EVERYTHING,
    kind: AuditKind = "all",
) -> AuditList:
    """Events matching every given filter, newest first; ``until`` is exclusive.
    ``visible`` keeps only events of repositories the caller may read; ``kind`` keeps the
    changes (``mutation``), the pulls (``pull``) or both."""
    conditions = [visible.where(col(AuditEvent.repository), repository=True)]
    if kind != "all":
        conditions.append(kind_condition(kind))
    if repository is not None:
        conditions.append(col(AuditEvent.repository) == repository)
    if action is not None:
        conditions.append(col(AuditEvent.action) == action)
    if actor is not None:
        conditions.append(col(AuditEvent.actor) == actor)
    if target is not None:
        conditions.append(col(AuditEvent.target) == target)
    if since is not None:
        conditions.append(col(AuditEvent.at) >= since)
    if until is not None:
        conditions.append(col(AuditEvent.at) < until)
    total = session.exec(select(func.count()).select_from(AuditEvent).where(*conditions)).one()
    rows = session.exec(
        select(AuditEvent)
        .where(*conditions)
        .order_by(col(AuditEvent.id).desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return AuditList(items=[audit_event_out(row) for row in rows], total=total)
