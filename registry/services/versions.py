"""Read versions and their files."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func
from sqlmodel import Session, col, select

from registry.schemas.repos import FileEntry, VersionList, VersionOut
from registry.services.names import repository_id
from registry.services.repositories import find_repository
from registry.services.version_reads import VersionState, state_of, version_files, version_state
from registry.tables import Repository, Version


def version_out(session: Session, repository: Repository, row: Version) -> VersionOut:
    state = state_of(session, repository, row, results=False)
    return version_out_of(session.connection(), state)


def version_out_of(connection: Connection, state: VersionState) -> VersionOut:
    repository, row = state.repository, state.version
    files = version_files(connection, row).files
    return VersionOut(
        repository=repository_id(repository.namespace, repository.name),
        version=row.number,
        digest=f"sha256:{row.digest}",
        commit=row.digest[:40],
        kind=row.kind,
        message=row.message,
        created_by=row.created_by,
        created_at=row.created_at,
        size=row.size,
        files=[FileEntry(path=f.path, sha256=f.sha256, size=f.size) for f in files],
        metadata=row.adapter_metadata,
        card=row.card,
        aliases=state.aliases,
        lineage=row.lineage,
        downloads=state.downloads,
    )


def list_versions(
    session: Session, namespace: str, name: str, *, limit: int = 50, offset: int = 0
) -> VersionList:
    repository = find_repository(session, namespace, name)
    condition = Version.repository_id == repository.id
    total = session.exec(select(func.count()).select_from(Version).where(condition)).one()
    rows = session.exec(
        select(Version)
        .where(condition)
        .order_by(col(Version.number).desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return VersionList(items=[version_out(session, repository, row) for row in rows], total=total)


def get_version(connection: Connection, namespace: str, name: str, ref: str) -> VersionOut:
    """One query on the hot path (``registry.services.version_reads``)."""
    return version_out_of(connection, version_state(connection, namespace, name, ref))


@dataclass(frozen=True)
class VersionFileRef:
    """A file of a resolved version: what a download needs."""

    repository: str
    version: int
    digest: str
    path: str
    sha256: str
    size: int
