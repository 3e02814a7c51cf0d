"""Aliases: mutable, audited pointers such as ``production`` to a version."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection, bindparam
from sqlmodel import Session, col, select

from registry.db import write_transaction
from registry.errors import AliasNotFound
from registry.schemas.repos import AliasHistory, AliasHistoryEntry, AliasList, AliasOut
from registry.services.audit import ALIAS_DELETE, ALIAS_SET, Caller, record_event
from registry.services.eval_gates import enforce_gates
from registry.services.names import check_alias_name, repository_id
from registry.services.policies import check_alias_change
from registry.services.refs import resolve_ref
from registry.services.repositories import check_writable, find_repository, lock_repository
from registry.tables import Alias, AuditEvent, Repository, Version, utcnow


def alias_target(repository: str, alias: str) -> str:
    """The audit target of an alias: the ref that names it, ``ns/name@alias``."""
    return f"{repository}@{alias}"


def _alias_out(session: Session, repository: Repository, row: Alias) -> AliasOut:
    version = session.get(Version, row.version_id)
    assert version is not None
    return AliasOut(
        repository=repository_id(repository.namespace, repository.name),
        name=row.name,
        version=version.number,
        digest=f"sha256:{version.digest}",
        updated_by=row.updated_by,
        updated_at=row.updated_at,
        reason=row.reason,
    )


def _find_alias(session: Session, repository: Repository, alias: str) -> Alias:
    row = session.get(Alias, (repository.id, alias))
    if row is None:
        repo_id = repository_id(repository.namespace, repository.name)
        raise AliasNotFound(
            f"{repo_id} has no alias {alias!r}; set it with "
            f"`lorry alias set {repo_id} {alias} VERSION`"
        )
    return row


def list_aliases(session: Session, namespace: str, name: str) -> AliasList:
    repository = find_repository(session, namespace, name)
    rows = session.exec(
        select(Alias).where(Alias.repository_id == repository.id).order_by(col(Alias.name))
    ).all()
    return AliasList(items=[_alias_out(session, repository, row) for row in rows])


_ALIAS_TARGET = (
    sa.select(
        col(Alias.updated_by),
        col(Alias.updated_at),
        col(Alias.reason),
        col(Version.number),
        col(Version.digest),
    )
    .join(Version, col(Version.id) == col(Alias.version_id))
    .join(Repository, col(Repository.id) == col(Alias.repository_id))
    .where(
        col(Repository.namespace) == bindparam("namespace"),
        col(Repository.name) == bindparam("name"),
        col(Alias.name) == bindparam("alias"),
    )
)
"""Built once (see ``registry.services.refs``): an alias and what it points at."""


def get_alias(connection: Connection, namespace: str, name: str, alias: str) -> AliasOut:
    """One statement on the hot path (a deployment asks this on every poll); the slower
    lookups below run only to name what is missing."""
    check_alias_name(alias)
    found = connection.execute(
        _ALIAS_TARGET, {"namespace": namespace, "name": name, "alias": alias}
    ).first()
    if found is None:
        with Session(bind=connection) as session:
            repository = find_repository(session, namespace, name)
            return _alias_out(session, repository, _find_alias(session, repository, alias))
    updated_by, updated_at, reason, number, digest = found
    return AliasOut(
        repository=repository_id(namespace, name),
        name=alias,
        version=number,
        digest=f"sha256:{digest}",
        updated_by=updated_by,
        updated_at=updated_at,
        reason=reason,
    )


def point_alias(
    session: Session,
    repository: Repository,
    alias: str,
    version: Version,
    reason: str | None,
    caller: Caller,
    *,
    override_gate: bool = False,
) -> Alias:
    """Point ``alias`` at ``version`` inside the caller's write transaction, with its event.

    Pointing an alias where it already points changes nothing and records nothing.
    A protected alias (``registry.services.policies``) needs promote and a reason, and the
    evidence its rules require (``registry.services.eval_gates``): every alias move goes
    through here, so every path is gated alike. An archived repository's aliases stay put.
    """
    check_writable(repository)
    check_alias_change(
        session, caller, repository_id(repository.namespace, repository.name), alias, reason
    )
    row = session.get(Alias, (repository.id, alias))
    before: int | None = None
    if row is not None:
        if row.version_id == version.id:
            return row
    gate = enforce_gates(session, caller, repository, alias, version, reason, override_gate)
    if row is not None:
        previous = session.get(Version, row.version_id)
        before = previous.number if previous else None
        row.version_id = version.id  # type: ignore[assignment]
        row.updated_by = caller.actor
        row.updated_at = utcnow()
        row.reason = reason
    else:
        assert repository.id is not None and version.id is not None
        row = Alias(
            repository_id=repository.id,
            name=alias,
            version_id=version.id,
            updated_by=caller.actor,
            updated_at=utcnow(),
            reason=reason,
        )
    session.add(row)
    repo_id = repository_id(repository.namespace, repository.name)
    record_event(
        session,
        caller,
        ALIAS_SET,
        repository=repo_id,
        target=alias_target(repo_id, alias),
        before={"version": before},
        after={"version": version.number, "reason": reason, **gate},
    )
    return row


def set_alias(
    session: Session,
    namespace: str,
    name: str,
    alias: str,
    ref: str | int,
    reason: str | None,
    caller: Caller,
    *,
    override_gate: bool = False,
) -> AliasOut:
    check_alias_name(alias)
    with write_transaction(session):
        repository = lock_repository(session, namespace, name)
        version = resolve_ref(session, repository, ref)
        row = point_alias(
            session, repository, alias, version, reason, caller, override_gate=override_gate
        )
    return _alias_out(session, repository, row)


def delete_alias(
    session: Session, namespace: str, name: str, alias: str, reason: str | None, caller: Caller
) -> None:
    check_alias_name(alias)
    with write_transaction(session):
        repository = lock_repository(session, namespace, name)
        check_writable(repository)
        check_alias_change(session, caller, repository_id(namespace, name), alias, reason)
        row = _find_alias(session, repository, alias)
        version = session.get(Version, row.version_id)
        session.delete(row)
        repo_id = repository_id(namespace, name)
        record_event(
            session,
            caller,
            ALIAS_DELETE,
            repository=repo_id,
            target=alias_target(repo_id, alias),
            before={"version": version.number if version else None},
            after={"version": None, "reason": reason},
        )


def alias_history(session: Session, namespace: str, name: str, alias: str) -> AliasHistory:
    """Every move of the alias, oldest first, read from the audit log."""
    check_alias_name(alias)
    find_repository(session, namespace, name)
    repo_id = repository_id(namespace, name)
    events = session.exec(
        select(AuditEvent)
        .where(
            AuditEvent.repository == repo_id,
            AuditEvent.target == alias_target(repo_id, alias),
            col(AuditEvent.action).in_((ALIAS_SET, ALIAS_DELETE)),
        )
        .order_by(col(AuditEvent.id))
    ).all()
    items = [
        AliasHistoryEntry(
            alias=alias,
            from_version=(event.before or {}).get("version"),
            to_version=(event.after or {}).get("version"),
            actor=event.actor,
            reason=(event.after or {}).get("reason"),
            at=event.at,
            request_id=event.request_id,
        )
        for event in events
    ]
    return AliasHistory(items=items)
