"""Read versions and their files."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, func
from sqlmodel import Session, col, select

from registry.schemas.repos import FileEntry, VersionList, VersionOut
from registry.services.access_log import version_downloads
from registry.services.names import repository_id
from registry.services.refs import find_version
from registry.services.repositories import find_repository
from registry.tables import Alias, Repository, Version, VersionFile

_FILES = (
    select(VersionFile)
    .where(col(VersionFile.version_id) == bindparam("version_id"))
    .order_by(col(VersionFile.path))
)
_ALIASES = (
    select(col(Alias.name))
    .where(col(Alias.version_id) == bindparam("version_id"))
    .order_by(col(Alias.name))
)
"""Built once: see ``registry.services.refs``."""


def version_out(session: Session, repository: Repository, row: Version) -> VersionOut:
    files = session.exec(_FILES, params={"version_id": row.id}).all()
    aliases = session.connection().execute(_ALIASES, {"version_id": row.id}).scalars().all()
    repo_id = repository_id(repository.namespace, repository.name)
    return VersionOut(
        repository=repo_id,
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
        aliases=list(aliases),
        lineage=row.lineage,
        downloads=version_downloads(session, repo_id, row.number),
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


def get_version(session: Session, namespace: str, name: str, ref: str) -> VersionOut:
    return version_out(session, *find_version(session, namespace, name, ref))


@dataclass(frozen=True)
class VersionFileRef:
    """A file of a resolved version: what a download needs."""

    repository: str
    version: int
    digest: str
    path: str
    sha256: str
    size: int
