"""Lineage of composed versions: the ancestry tree, and what derives from a version
(versions composed from it, and files exported from it).

Both respect the caller's ``Visibility``. A version's parents are part of its own record
(its metadata and model card name them, written by someone who could read them), so they
are shown, but the ancestry of a parent in a namespace the caller may not read is not.
What derives from a version lives in other repositories: only versions the caller may
read are listed, and the walk does not pass through the others."""

from __future__ import annotations

from collections import deque

from sqlmodel import Session, col, select

from registry.schemas.compose import (
    DerivedList,
    DerivedVersion,
    JobResult,
    LineageNode,
    LineageParent,
)
from registry.services.export_listing import exports_of
from registry.services.names import repository_id
from registry.services.refs import resolve_ref
from registry.services.repositories import find_repository
from registry.services.visibility import EVERYTHING, Visibility
from registry.tables import Alias, Repository, Version

MAX_DEPTH = 32
"""Ancestry deeper than this is cut (each level is one composition)."""


def _find_by_digest(session: Session, repository: str, digest_hex: str) -> Version | None:
    namespace, _, name = repository.partition("/")
    row: Version | None = session.exec(
        select(Version)
        .join(Repository, col(Repository.id) == col(Version.repository_id))
        .where(
            Repository.namespace == namespace,
            Repository.name == name,
            Version.digest == digest_hex,
        )
    ).first()
    return row


def _node(
    session: Session, repository: str, row: Version, depth: int, visible: Visibility
) -> LineageNode:
    lineage = row.lineage or {}
    parents = []
    for parent in lineage.get("parents", []):
        digest_hex = str(parent["digest"]).removeprefix("sha256:")
        sub = None
        if visible.repository(parent["repository"]) and depth < MAX_DEPTH:
            found = _find_by_digest(session, parent["repository"], digest_hex)
            if found is not None:
                sub = _node(session, parent["repository"], found, depth + 1, visible)
        parents.append(
            LineageParent(
                repository=parent["repository"],
                version=parent["version"],
                digest=f"sha256:{digest_hex}",
                weight=parent.get("weight"),
                role=parent.get("role", "input"),
                lineage=sub if sub is not None and sub.parents else None,
            )
        )
    return LineageNode(
        repository=repository,
        version=row.number,
        digest=f"sha256:{row.digest}",
        kind=row.kind,
        method=lineage.get("method"),
        job=lineage.get("job"),
        parents=parents,
    )


def get_lineage(
    session: Session, namespace: str, name: str, ref: str, visible: Visibility = EVERYTHING
) -> LineageNode:
    """The version's ancestry: its parents, their parents, ... (empty for a pushed version)."""
    repository = find_repository(session, namespace, name)
    row = resolve_ref(session, repository, ref)
    return _node(session, repository_id(namespace, name), row, 0, visible)


def get_derived(
    session: Session, namespace: str, name: str, ref: str, visible: Visibility = EVERYTHING
) -> DerivedList:
    """Every version composed from this one, directly or through other compositions,
    with the aliases that point at each (``production`` and the like); and the files
    exported from this one (GGUF)."""
    repository = find_repository(session, namespace, name)
    source = resolve_ref(session, repository, ref)
    source_id = repository_id(namespace, name)
    composed = session.exec(
        select(Version, Repository)
        .join(Repository, col(Repository.id) == col(Version.repository_id))
        .where(col(Version.lineage).is_not(None))
        .where(visible.where(col(Repository.namespace), repository=False))
        .order_by(col(Version.id))
    ).all()
    children: dict[tuple[str, str], list[tuple[Version, str]]] = {}
    for version, repo in composed:
        child_repo = repository_id(repo.namespace, repo.name)
        for parent in (version.lineage or {}).get("parents", []):
            key = (parent["repository"], str(parent["digest"]).removeprefix("sha256:"))
            children.setdefault(key, []).append((version, child_repo))
    found: list[DerivedVersion] = []
    seen: set[int] = set()
    pending = deque([((source_id, source.digest), f"{source_id}@{source.number}", 1)])
    while pending:
        key, via, depth = pending.popleft()
        for version, child_repo in children.get(key, []):
            assert version.id is not None
            if version.id in seen or depth > MAX_DEPTH:
                continue
            seen.add(version.id)
            aliases = session.exec(
                select(Alias.name).where(Alias.version_id == version.id).order_by(col(Alias.name))
            ).all()
            found.append(
                DerivedVersion(
                    repository=child_repo,
                    version=version.number,
                    digest=f"sha256:{version.digest}",
                    aliases=list(aliases),
                    via=via,
                    depth=depth,
                )
            )
            pending.append(
                ((child_repo, version.digest), f"{child_repo}@{version.number}", depth + 1)
            )
    return DerivedList(
        source=JobResult(
            repository=source_id, version=source.number, digest=f"sha256:{source.digest}"
        ),
        items=found,
        exports=exports_of(session, source_id, source),
    )
