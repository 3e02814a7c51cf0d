"""Reading exports: a version's exports, one by path, and the merged exports of adapters
merged into a model version (only those of namespaces the caller may read)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from registry.errors import FileNotFound
from registry.schemas.export import ExportList, ExportOut, ExportSource
from registry.services.names import repository_id
from registry.services.refs import resolve_ref
from registry.services.repositories import find_repository
from registry.services.visibility import Visibility
from registry.tables import Repository, Version, VersionExport

__all__ = ["exports_of", "get_export", "list_exports"]


def _merged_into(lineage: dict[str, Any]) -> ExportSource | None:
    base = lineage.get("base")
    if not lineage.get("merged") or not isinstance(base, dict):
        return None
    return ExportSource(
        repository=str(base["repository"]), version=int(base["version"]), digest=str(base["digest"])
    )


def _export_out(repo_id: str, version_number: int, row: VersionExport) -> ExportOut:
    return ExportOut(
        repository=repo_id,
        version=version_number,
        path=row.path,
        format=row.format,
        outtype=row.outtype,
        sha256=row.sha256,
        size=row.size,
        job=row.job_id,
        merged_into=_merged_into(row.lineage),
        lineage=row.lineage,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def exports_of(session: Session, repo_id: str, version: Version) -> list[ExportOut]:
    """The version's exports, by path."""
    rows = session.exec(
        select(VersionExport)
        .where(VersionExport.version_id == version.id)
        .order_by(col(VersionExport.path))
    ).all()
    return [_export_out(repo_id, version.number, row) for row in rows]


def _merged_into_version(
    session: Session, version: Version, visible: Visibility
) -> list[ExportOut]:
    """Merged exports of adapters merged into ``version``, of visible namespaces only."""
    rows = session.exec(
        select(VersionExport, Version.number, Repository.namespace, Repository.name)
        .join(Version, col(Version.id) == col(VersionExport.version_id))
        .join(Repository, col(Repository.id) == col(Version.repository_id))
        .where(
            col(VersionExport.merged_into_version_id) == version.id,
            visible.where(col(Repository.namespace), repository=False),
        )
        .order_by(col(Repository.namespace), col(Repository.name), col(Version.number))
    ).all()
    return [
        _export_out(repository_id(namespace, name), number, row)
        for row, number, namespace, name in rows
    ]


def list_exports(
    session: Session, namespace: str, name: str, ref: str, visible: Visibility
) -> ExportList:
    repository = find_repository(session, namespace, name)
    version = resolve_ref(session, repository, ref)
    repo_id = repository_id(namespace, name)
    return ExportList(
        source=ExportSource(
            repository=repo_id, version=version.number, digest=f"sha256:{version.digest}"
        ),
        items=exports_of(session, repo_id, version),
        merged_into_this=_merged_into_version(session, version, visible)
        if repository.kind == "model"
        else [],
    )


def get_export(session: Session, namespace: str, name: str, ref: str, path: str) -> ExportOut:
    """One export of the version by its path, with its lineage."""
    repository = find_repository(session, namespace, name)
    version = resolve_ref(session, repository, ref)
    repo_id = repository_id(namespace, name)
    row = session.get(VersionExport, (version.id, path))
    if row is None:
        raise FileNotFound(
            f"version {version.number} of {repo_id} has no export {path!r}; its exports are "
            f"listed by `lorry exports {repo_id}@{version.number}`"
        )
    return _export_out(repo_id, version.number, row)
