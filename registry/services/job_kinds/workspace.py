"""What job kinds share: version files fetched from the blob store into a scratch directory,
outputs stored back, and the library versions their lineage records."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from composer.fileio import sha256_file
from registry.storage.base import BlobStore
from registry.tables import Repository, Version, VersionFile

__all__ = ["library_versions", "materialise", "pinned_version", "store_file", "version_files"]


def pinned_version(session: Session, pinned: str) -> tuple[Repository, Version]:
    """The repository and version of a pinned reference ``ns/name@sha256:<digest>``."""
    repository_id, _, digest = pinned.partition("@sha256:")
    namespace, _, name = repository_id.partition("/")
    repository, version = session.exec(
        select(Repository, Version)
        .join(Version, col(Version.repository_id) == col(Repository.id))
        .where(Repository.namespace == namespace, Repository.name == name, Version.digest == digest)
    ).one()
    return repository, version


def version_files(engine: Engine, pinned: str, prefix: str = "") -> list[tuple[str, str]]:
    """``(path, sha256)`` of the pinned version's files whose path starts with ``prefix``."""
    with Session(engine) as session:
        _repository, version = pinned_version(session, pinned)
        rows = session.exec(
            select(VersionFile.path, VersionFile.sha256).where(VersionFile.version_id == version.id)
        ).all()
    return [(path, sha256) for path, sha256 in rows if path.startswith(prefix)]


def materialise(store: BlobStore, files: list[tuple[str, str]], directory: Path) -> None:
    """Write ``(path, sha256)`` files from the blob store under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for path, sha256 in files:
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as handle:
            for chunk in store.open_range(sha256):
                handle.write(chunk)


def store_file(store: BlobStore, path: Path) -> tuple[str, int]:
    """Hash a finished output file and put it in the blob store (once); ``(sha256, size)``.

    The size is taken before ``put_file``, which may move the file away.
    """
    sha256 = sha256_file(path)
    size = path.stat().st_size
    if not store.exists(sha256):
        store.put_file(path, sha256)
    return sha256, size


def library_versions(names: Iterable[str]) -> dict[str, str]:
    """The installed version of each distribution (``unknown`` where it is missing)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions
