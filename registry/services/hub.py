"""The Hugging Face Hub view of a repository: revisions, model info, tree listings and files.

A Hub revision is a version number, an alias, ``main`` (the repository's main
alias if set, else the latest version), ``latest``, a digest with or without
``sha256:``, or the 40-hex commit id. Every version's Hub ``sha`` is its commit
id (the first 40 hex of its digest), so it never changes. Every file is
presented as a Git LFS file whose oid is its sha256; its git blob id is the
sha1 of that LFS pointer, as the Hub computes it. A version's exports (GGUF
files built later, ``registry.services.exports``) are served as files of its
revision (``resolve/{revision}/{path}``, ``paths-info``), but left out of the
listings (``siblings``, the tree) that ``snapshot_download`` fetches everything
from: a server such as vLLM pulls an adapter with ``snapshot_download``, and an
8B model's f16 and q8_0 exports are ~25 GB that it never asked for.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from registry.errors import (
    AliasNotFound,
    FileNotFound,
    InvalidInput,
    InvalidReference,
    RepositoryNotFound,
)
from registry.schemas.hub import (
    HubLastCommit,
    HubRef,
    HubRefs,
    HubTreeEntry,
    HubTreeLfs,
)
from registry.services.derived_files import derived_files
from registry.services.names import repository_id
from registry.services.refs import find_version, resolve_ref
from registry.services.repositories import find_repository
from registry.services.version_reads import (
    FileRow,
    version_files,
)
from registry.tables import Alias, Repository, Version, VersionFile

MAIN = "main"
TREE_PAGE_SIZE = 1000
TREE_PAGE_SIZE_EXPANDED = 50
"""The Hub's own page sizes for tree listings (plain and ``expand=true``)."""


@dataclass(frozen=True)
class ResolvedRevision:
    repository: Repository
    version: Version

    @property
    def repo_id(self) -> str:
        return repository_id(self.repository.namespace, self.repository.name)

    @property
    def commit(self) -> str:
        return self.version.digest[:40]


@dataclass(frozen=True)
class TreePage:
    entries: list[HubTreeEntry]
    next_cursor: str | None


def hub_timestamp(moment: datetime) -> str:
    """``2026-03-03T12:00:00.000Z``: the only format ``huggingface_hub`` parses."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def lfs_pointer_size(sha256: str, size: int) -> int:
    return len(_lfs_pointer(sha256, size))


def git_blob_id(sha256: str, size: int) -> str:
    """The git oid of the file's LFS pointer: what the Hub reports as ``blobId``."""
    pointer = _lfs_pointer(sha256, size)
    return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer, usedforsecurity=False).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
    ).encode()


def find_hub_repository(session: Session, namespace: str, name: str) -> Repository:
    """The repository; an invalid name is a missing repository to Hub clients."""
    try:
        return find_repository(session, namespace, name)
    except InvalidInput as exc:
        raise RepositoryNotFound(exc.message) from exc


def resolve_revision(
    session: Session, namespace: str, name: str, revision: str
) -> ResolvedRevision:
    """The version a Hub revision names (see the module docstring)."""
    if revision != MAIN:
        try:
            repository, version = find_version(session, namespace, name, revision)
        except InvalidReference:
            raise  # a revision that cannot exist: RevisionNotFound, not RepoNotFound
        except InvalidInput as exc:  # a repository name that cannot exist
            raise RepositoryNotFound(exc.message) from exc
        return ResolvedRevision(repository=repository, version=version)
    repository = find_hub_repository(session, namespace, name)
    if repository.main_alias is None:
        version = resolve_ref(session, repository, "latest")
    else:
        try:
            version = resolve_ref(session, repository, repository.main_alias)
        except AliasNotFound as exc:
            repo_id = repository_id(namespace, name)
            raise AliasNotFound(
                f"`main` of {repo_id} is the alias {repository.main_alias!r}, which no longer "
                f"exists; point the alias at a version again, or serve the latest version with "
                f"`lorry repo set {repo_id} --clear-main-alias`"
            ) from exc
    return ResolvedRevision(repository=repository, version=version)


def empty_at_main(session: Session, namespace: str, name: str, revision: str) -> Repository | None:
    """The repository when ``revision`` is ``main`` and it has no version yet (a Hub
    ``create_repo`` before the first commit): Hub clients then see an empty tree."""
    if revision != MAIN:
        return None
    repository = find_hub_repository(session, namespace, name)
    first = session.exec(select(Version.id).where(Version.repository_id == repository.id)).first()
    return repository if first is None else None


def _version_files(
    session: Session, version: Version, *, exports: bool = False
) -> list[FileRow | VersionFile]:
    """The version's files, by path; with its exports when ``exports``."""
    files: list[FileRow | VersionFile] = list(version_files(session.connection(), version).files)
    if exports:
        files += derived_files(session, version)
        files.sort(key=lambda row: row.path)
    return files


def _directory_oid(commit: str, path: str) -> str:
    return hashlib.sha1(f"tree {commit} {path}".encode(), usedforsecurity=False).hexdigest()


def _last_commit(resolved: ResolvedRevision) -> HubLastCommit:
    version = resolved.version
    return HubLastCommit(
        id=resolved.commit,
        title=version.message or f"version {version.number}",
        date=hub_timestamp(version.created_at),
    )


def _directory_entry(
    resolved: ResolvedRevision, path: str, last_commit: HubLastCommit | None
) -> HubTreeEntry:
    return HubTreeEntry(
        type="directory",
        oid=_directory_oid(resolved.commit, path),
        path=path,
        lastCommit=last_commit,
    )


def _file_entry(row: FileRow | VersionFile, last_commit: HubLastCommit | None) -> HubTreeEntry:
    return HubTreeEntry(
        type="file",
        oid=git_blob_id(row.sha256, row.size),
        path=row.path,
        size=row.size,
        lfs=HubTreeLfs(
            oid=row.sha256, size=row.size, pointerSize=lfs_pointer_size(row.sha256, row.size)
        ),
        lastCommit=last_commit,
    )


def list_tree(
    session: Session,
    namespace: str,
    name: str,
    revision: str,
    path: str = "",
    *,
    recursive: bool = False,
    expand: bool = False,
    cursor: str | None = None,
) -> TreePage:
    """Files and directories under ``path`` (all levels when ``recursive``), one page.

    Directories come first, then files, each by path. ``cursor`` is the offset
    of the page, as handed out in the previous page's ``next_cursor``.
    """
    if not path.strip("/") and empty_at_main(session, namespace, name, revision) is not None:
        return TreePage(entries=[], next_cursor=None)
    resolved = resolve_revision(session, namespace, name, revision)
    prefix = path.strip("/")
    files = _version_files(session, resolved.version)
    directories: set[str] = set()
    listed: list[FileRow | VersionFile] = []
    for row in files:
        if prefix and not row.path.startswith(f"{prefix}/"):
            continue
        relative = row.path[len(prefix) + 1 :] if prefix else row.path
        parts = relative.split("/")
        base = f"{prefix}/" if prefix else ""
        if recursive:
            directories.update(base + "/".join(parts[:depth]) for depth in range(1, len(parts)))
            listed.append(row)
        elif len(parts) > 1:
            directories.add(base + parts[0])
        else:
            listed.append(row)
    if prefix and not listed and not directories:
        raise FileNotFound(
            f"{resolved.repo_id} has no directory {prefix!r} at revision {revision!r} "
            f"(version {resolved.version.number})",
            commit=resolved.commit,
        )
    last_commit = _last_commit(resolved) if expand else None
    entries = [_directory_entry(resolved, d, last_commit) for d in sorted(directories)]
    entries += [_file_entry(row, last_commit) for row in listed]
    start = int(cursor) if cursor and cursor.isdigit() else 0
    page_size = TREE_PAGE_SIZE_EXPANDED if expand else TREE_PAGE_SIZE
    end = start + page_size
    return TreePage(
        entries=entries[start:end], next_cursor=str(end) if end < len(entries) else None
    )


def paths_info(
    session: Session,
    namespace: str,
    name: str,
    revision: str,
    paths: list[str],
    *,
    expand: bool = False,
) -> list[HubTreeEntry]:
    """The files and directories among ``paths`` at a revision; missing paths are left out."""
    if empty_at_main(session, namespace, name, revision) is not None:
        return []
    resolved = resolve_revision(session, namespace, name, revision)
    rows = {row.path: row for row in _version_files(session, resolved.version, exports=True)}
    last_commit = _last_commit(resolved) if expand else None
    entries = []
    for path in dict.fromkeys(p.strip("/") for p in paths):
        if path in rows:
            entries.append(_file_entry(rows[path], last_commit))
        elif path and any(file_path.startswith(f"{path}/") for file_path in rows):
            entries.append(_directory_entry(resolved, path, last_commit))
    return entries


def list_refs(session: Session, namespace: str, name: str) -> HubRefs:
    """``main`` as the one branch; every alias and version number as a tag."""
    repository = find_hub_repository(session, namespace, name)
    versions = session.exec(
        select(Version).where(Version.repository_id == repository.id).order_by(col(Version.number))
    ).all()
    if not versions:
        return HubRefs(branches=[], tags=[])
    try:
        main: ResolvedRevision | None = resolve_revision(session, namespace, name, MAIN)
    except AliasNotFound:
        main = None
    aliases = session.exec(
        select(Alias.name, Version.digest)
        .join(Version, col(Version.id) == col(Alias.version_id))
        .where(Alias.repository_id == repository.id)
        .order_by(col(Alias.name))
    ).all()
    tags = [
        HubRef(name=alias, ref=f"refs/tags/{alias}", targetCommit=digest[:40])
        for alias, digest in aliases
    ]
    tags += [
        HubRef(name=str(v.number), ref=f"refs/tags/{v.number}", targetCommit=v.digest[:40])
        for v in versions
    ]
    return HubRefs(
        branches=[HubRef(name=MAIN, ref="refs/heads/main", targetCommit=main.commit)]
        if main is not None
        else [],
        tags=tags,
    )
