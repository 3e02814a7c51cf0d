"""Archiving and deleting repositories and versions.

- **Archive** a repository: it becomes read only (no new versions, Hub commits, alias
  moves or exports: ``repositories.check_writable``) and is left out of listings unless
  they ask for archived ones. Every read keeps working, by number, digest and alias:
  what consumers pinned (``@production``) must not break because a team retired a
  repository. ``unarchive`` reverses it. Both are audit events.
- **Delete** a version or a repository: an admin, with a reason. Refused while an alias
  points at the version, while another version's lineage (a composition's parents, a
  merged model's base, an export's base) refers to it, while a deployment serves the
  repository or a queued or running job reads it: lineage and what serves traffic must
  stay answerable, so there is no ``--force``. The rows of the version (files, exports,
  evaluation results) go; a tombstone (``registry.tables.Tombstone``) stays, so reads
  answer "deleted on DATE by WHO: REASON" and the number is never given again. Audit
  events are never touched, so the chain still verifies. Blobs that no remaining version
  references are collected by the next ``gc`` (``registry.services.gc``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, exists
from sqlmodel import Session, col, select

from registry.db import write_transaction
from registry.errors import Conflict, DeletionBlocked, InvalidInput, InvalidReference
from registry.schemas.lifecycle import DeletedVersion, DeletionOut
from registry.schemas.repos import Repo
from registry.services.audit import (
    REPOSITORY_ARCHIVE,
    REPOSITORY_DELETE,
    REPOSITORY_UNARCHIVE,
    VERSION_DELETE,
    Caller,
    record_event,
)
from registry.services.names import parse_ref, repository_id
from registry.services.refs import resolve_ref
from registry.services.repositories import lock_repository, repo_out
from registry.tables import (
    Alias,
    Blob,
    DeploymentTarget,
    EvalDocument,
    EvalResult,
    Job,
    Repository,
    Tombstone,
    Version,
    VersionExport,
    VersionFile,
    utcnow,
)

_OPEN_JOB_STATES = ("queued", "running")
_MAX_NAMED = 5
"""Blockers named in a refusal; the rest are counted."""


def _reason(reason: str | None, what: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise InvalidInput(f"{what} needs a reason: pass --reason TEXT (REST: reason)")
    return text


def archive_repository(
    session: Session, caller: Caller, namespace: str, name: str, reason: str | None
) -> Repo:
    text = _reason(reason, "archiving a repository")
    repo_id = repository_id(namespace, name)
    with write_transaction(session):
        repository = lock_repository(session, namespace, name)
        if repository.archived_at is not None:
            raise Conflict(
                f"{repo_id} is already archived (by {repository.archived_by}: "
                f"{repository.archive_reason}); `lorry repo unarchive {repo_id}` reverses it"
            )
        repository.archived_at = utcnow()
        repository.archived_by = caller.actor
        repository.archive_reason = text
        session.add(repository)
        record_event(
            session,
            caller,
            REPOSITORY_ARCHIVE,
            repository=repo_id,
            target=repo_id,
            before={"archived": False},
            after={"archived": True, "reason": text},
        )
    return repo_out(session, repository)


def unarchive_repository(
    session: Session, caller: Caller, namespace: str, name: str, reason: str | None
) -> Repo:
    repo_id = repository_id(namespace, name)
    with write_transaction(session):
        repository = lock_repository(session, namespace, name)
        if repository.archived_at is None:
            raise Conflict(f"{repo_id} is not archived; nothing to unarchive")
        before = {
            "archived": True,
            "by": repository.archived_by,
            "reason": repository.archive_reason,
        }
        repository.archived_at = None
        repository.archived_by = None
        repository.archive_reason = None
        session.add(repository)
        record_event(
            session,
            caller,
            REPOSITORY_UNARCHIVE,
            repository=repo_id,
            target=repo_id,
            before=before,
            after={"archived": False, "reason": (reason or "").strip() or None},
        )
    return repo_out(session, repository)


def _refers_to(lineage: dict[str, Any] | None, keys: set[tuple[str, str]]) -> bool:
    if not lineage:
        return False
    refs = list(lineage.get("parents") or [])
    refs += [lineage[key] for key in ("exported_from", "base") if lineage.get(key)]
    return any(
        isinstance(ref, dict)
        and (str(ref.get("repository")), str(ref.get("digest", "")).removeprefix("sha256:")) in keys
        for ref in refs
    )


def _named(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_NAMED])
    return shown if len(items) <= _MAX_NAMED else f"{shown} and {len(items) - _MAX_NAMED} more"


def _check_dependants(
    session: Session, repo_id: str, versions: Sequence[Version], whole_repository: bool
) -> None:
    """Refuse when lineage, exports or open jobs outside what is deleted refer to it."""
    keys = {(repo_id, row.digest) for row in versions}
    ids = {row.id for row in versions}
    derived: list[str] = []
    for version, repo in session.exec(
        select(Version, Repository)
        .join(Repository, col(Repository.id) == col(Version.repository_id))
        .where(col(Version.lineage).is_not(None))
        .order_by(col(Version.id))
    ).all():
        if version.id not in ids and _refers_to(version.lineage, keys):
            derived.append(f"{repository_id(repo.namespace, repo.name)}@{version.number}")
    for export, number, repo in session.exec(
        select(VersionExport, Version.number, Repository)
        .join(Version, col(Version.id) == col(VersionExport.version_id))
        .join(Repository, col(Repository.id) == col(Version.repository_id))
    ).all():
        if export.version_id not in ids and _refers_to(export.lineage, keys):
            derived.append(f"{repository_id(repo.namespace, repo.name)}@{number}:{export.path}")
    if derived:
        raise DeletionBlocked(
            f"{_named(derived)} derive(s) from it, and lineage must stay answerable; "
            "delete what derives from it first",
            derived=derived,
        )
    jobs = [
        f"{job.kind} job {job.id} ({job.state})"
        for job in session.exec(
            select(Job).where(col(Job.state).in_(_OPEN_JOB_STATES)).order_by(col(Job.created_at))
        ).all()
        if (whole_repository and job.target == repo_id)
        or any(
            (str(item.get("repository")), str(item.get("digest", "")).removeprefix("sha256:"))
            in keys
            for item in job.inputs
        )
    ]
    if jobs:
        raise DeletionBlocked(
            f"{_named(jobs)} read(s) or write(s) it; wait for it to finish or cancel it "
            "(`lorry jobs cancel JOB`)"
        )


def _drop_version(session: Session, row: Version) -> int:
    """Delete a version's rows; the number of its files.

    The ``blobs`` rows of files that no remaining version or export references go too:
    such a row marks a committed blob, and gc claims a blob by inserting it
    (``registry.services.gc``), so the next gc can collect them."""
    files = session.exec(select(VersionFile).where(VersionFile.version_id == row.id)).all()
    exported = session.exec(
        select(VersionExport.sha256).where(VersionExport.version_id == row.id)
    ).all()
    for table in (EvalResult, EvalDocument, VersionExport, VersionFile):
        session.execute(delete(table).where(col(table.version_id) == row.id))
    session.execute(delete(Version).where(col(Version.id) == row.id))
    released = {file.sha256 for file in files} | set(exported)
    if released:
        session.execute(
            delete(Blob).where(
                col(Blob.sha256).in_(released),
                ~exists().where(col(VersionFile.sha256) == col(Blob.sha256)),
                ~exists().where(col(VersionExport.sha256) == col(Blob.sha256)),
            )
        )
    return len(files)


def _tombstone(
    session: Session, repo_id: str, row: Version | None, caller: Caller, reason: str, at: Any
) -> None:
    session.add(
        Tombstone(
            repository=repo_id,
            version=row.number if row else None,
            digest=row.digest if row else None,
            deleted_by=caller.actor,
            deleted_at=at,
            reason=reason,
        )
    )


def delete_version(
    session: Session, caller: Caller, namespace: str, name: str, ref: str, reason: str | None
) -> DeletionOut:
    text = _reason(reason, "deleting a version")
    repo_id = repository_id(namespace, name)
    if parse_ref(ref).kind != "number":
        raise InvalidReference(
            f"name the version to delete by its number ({repo_id}@3), not {ref!r}: a "
            "deletion is never aimed through an alias or a digest"
        )
    with write_transaction(session):
        repository = lock_repository(session, namespace, name)
        version = resolve_ref(session, repository, ref)
        aliases = session.exec(
            select(Alias.name).where(Alias.version_id == version.id).order_by(col(Alias.name))
        ).all()
        if aliases:
            first = aliases[0]
            raise DeletionBlocked(
                f"alias(es) {', '.join(aliases)} of {repo_id} point at version "
                f"{version.number}; move each elsewhere (`lorry alias set {repo_id} {first} N`) "
                f"or remove it (`lorry alias rm {repo_id} {first}`) first",
                aliases=list(aliases),
            )
        _check_dependants(session, repo_id, [version], whole_repository=False)
        at = utcnow()
        files = _drop_version(session, version)
        _tombstone(session, repo_id, version, caller, text, at)
        record_event(
            session,
            caller,
            VERSION_DELETE,
            repository=repo_id,
            target=f"{repo_id}@{version.number}",
            before={"version": version.number, "digest": f"sha256:{version.digest}"},
            after={"deleted": True, "reason": text},
        )
    gone = [DeletedVersion(version=version.number, digest=f"sha256:{version.digest}")]
    return DeletionOut(
        repository=repo_id,
        version=version.number,
        versions=gone,
        deleted_by=caller.actor,
        deleted_at=at,
        reason=text,
        files=files,
    )


def delete_repository(
    session: Session, caller: Caller, namespace: str, name: str, reason: str | None
) -> DeletionOut:
    text = _reason(reason, "deleting a repository")
    repo_id = repository_id(namespace, name)
    with write_transaction(session):
        repository = lock_repository(session, namespace, name)
        aliases = session.exec(
            select(Alias.name).where(Alias.repository_id == repository.id).order_by(col(Alias.name))
        ).all()
        if aliases:
            raise DeletionBlocked(
                f"{repo_id} still has alias(es) {', '.join(aliases)}: whoever pulls them would "
                f"break; remove each first (`lorry alias rm {repo_id} {aliases[0]}`)",
                aliases=list(aliases),
            )
        targets = session.exec(
            select(DeploymentTarget).where(DeploymentTarget.repository == repo_id)
        ).all()
        if targets:
            raise DeletionBlocked(
                f"{len(targets)} deployment target(s) serve {repo_id} "
                f"(id {', '.join(str(t.id) for t in targets)}); remove them first "
                f"(`lorry deploy rm {repo_id} ID`)"
            )
        versions = session.exec(
            select(Version)
            .where(Version.repository_id == repository.id)
            .order_by(col(Version.number))
        ).all()
        _check_dependants(session, repo_id, versions, whole_repository=True)
        at = utcnow()
        files = 0
        for version in versions:
            files += _drop_version(session, version)
            _tombstone(session, repo_id, version, caller, text, at)
        _tombstone(session, repo_id, None, caller, text, at)
        session.execute(delete(Repository).where(col(Repository.id) == repository.id))
        gone = [DeletedVersion(version=v.number, digest=f"sha256:{v.digest}") for v in versions]
        record_event(
            session,
            caller,
            REPOSITORY_DELETE,
            repository=repo_id,
            target=repo_id,
            before={"versions": [item.model_dump() for item in gone[:1000]]},
            after={"deleted": True, "reason": text},
        )
    return DeletionOut(
        repository=repo_id,
        version=None,
        versions=gone,
        deleted_by=caller.actor,
        deleted_at=at,
        reason=text,
        files=files,
    )
