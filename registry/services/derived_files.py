"""Derived files of versions (exports): found and served by path beside the version's own
files, and recorded once their blob is stored.

A version's manifest and digest never change, so an export is a row of
``version_exports`` (path, sha256, size, lineage), not one of its files; downloads,
the Hugging Face API and garbage collection treat it as a file of the version.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from registry.db import insert_or_ignore, write_transaction
from registry.errors import BlobNotFound, Conflict, FileNotFound, MissingBlob
from registry.services.audit import Caller, record_event
from registry.services.names import repository_id
from registry.services.refs import find_version
from registry.services.versions import VersionFileRef
from registry.storage.base import BlobStore
from registry.tables import (
    Blob,
    Job,
    Repository,
    Version,
    VersionExport,
    VersionFile,
    utcnow,
)

VERSION_EXPORT = "version.export"


_EXPORTS = select(VersionExport).where(col(VersionExport.version_id) == bindparam("version_id"))
"""Built once: see ``registry.services.refs``."""


def derived_files(session: Session, version: Version) -> list[VersionFile]:
    """The version's exports as (unsaved) file rows, for listings that show files."""
    rows = session.exec(_EXPORTS, params={"version_id": version.id}).all()
    return [_as_file(row) for row in rows]


def derived_file(session: Session, version_id: int | None, path: str) -> VersionFile | None:
    row = session.get(VersionExport, (version_id, path))
    return _as_file(row) if row is not None else None


def _as_file(row: VersionExport) -> VersionFile:
    return VersionFile(version_id=row.version_id, path=row.path, sha256=row.sha256, size=row.size)


def find_file(session: Session, namespace: str, name: str, ref: str, path: str) -> VersionFileRef:
    """A file of a version by path: one of its files, else one of its exports."""
    _repository, version = find_version(session, namespace, name, ref)
    repo_id = repository_id(namespace, name)
    row = session.get(VersionFile, (version.id, path)) or derived_file(session, version.id, path)
    if row is None:
        raise FileNotFound(
            f"version {version.number} of {repo_id} has no file {path!r}; its files are listed "
            f"by `lorry show {repo_id}@{version.number}`, its exports by "
            f"`lorry exports {repo_id}@{version.number}`"
        )
    return VersionFileRef(
        repository=repo_id,
        version=version.number,
        digest=f"sha256:{version.digest}",
        path=row.path,
        sha256=row.sha256,
        size=row.size,
    )


def _insert_blob_row(session: Session, sha256: str, size: int) -> None:
    row = {"sha256": sha256, "size": size, "created_at": utcnow()}
    session.execute(insert_or_ignore(session, Blob, row, unique=["sha256"]))


def _check_stored(store: BlobStore, sha256: str, size: int, path: str) -> None:
    try:
        stored = store.size(sha256)
    except BlobNotFound:
        raise MissingBlob(
            f"the blob sha256:{sha256} of {path} vanished from the store (a concurrent "
            "`lorry gc`); submit the export again"
        ) from None
    if stored != size:
        raise MissingBlob(
            f"the blob sha256:{sha256} of {path} holds {stored} bytes, not {size}; "
            "submit the export again"
        )


def record_export(
    session: Session,
    store: BlobStore,
    caller: Caller,
    job: Job,
    *,
    sha256: str,
    size: int,
    lineage: dict[str, Any],
    merged_into: int | None = None,
) -> tuple[int, str, bool]:
    """Commit a built export (its blob already stored) as a derived file of its version.

    Returns ``(version number, version digest hex, reused)``: ``reused`` when an
    identical file was already recorded at the path. ``merged_into``: the base version
    of a merged export. The blob row, the export row and
    the ``version.export`` event commit together, after the blob is checked once more
    under its row (``lorry gc`` claims that row before it deletes a blob).
    """
    spec = job.spec
    path = str(spec["path"])
    namespace, _, name = job.target.partition("/")
    digest = str(spec["source"]).partition("@sha256:")[2]
    try:
        with write_transaction(session):
            version = session.exec(
                select(Version)
                .join(Repository, col(Repository.id) == col(Version.repository_id))
                .where(
                    Repository.namespace == namespace,
                    Repository.name == name,
                    Version.digest == digest,
                )
            ).one()
            assert version.id is not None
            number = version.number
            existing = session.get(VersionExport, (version.id, path))
            if existing is not None:
                same = existing.sha256 == sha256
                other_job = existing.job_id
                session.rollback()
                if same:
                    return number, digest, True
                raise Conflict(
                    f"{job.target}@{number} got another {path} meanwhile (job {other_job}); "
                    "download that one"
                )
            _insert_blob_row(session, sha256, size)
            session.add(
                VersionExport(
                    version_id=version.id,
                    path=path,
                    format=str(spec["format"]),
                    outtype=str(spec["outtype"]),
                    sha256=sha256,
                    size=size,
                    job_id=job.id,
                    lineage=lineage,
                    created_by=job.created_by,
                    created_at=utcnow(),
                    merged_into_version_id=merged_into,
                )
            )
            record_event(
                session,
                caller,
                VERSION_EXPORT,
                repository=job.target,
                target=f"{job.target}@{number}/{path}",
                after={
                    "version": number,
                    "digest": f"sha256:{digest}",
                    "path": path,
                    "format": spec["format"],
                    "outtype": spec["outtype"],
                    "sha256": sha256,
                    "size": size,
                    "job": job.id,
                    "base": spec.get("base"),
                    **({"merge_into": spec["merge_into"]} if spec.get("merge_into") else {}),
                },
            )
            session.flush()
            _check_stored(store, sha256, size, path)
    except IntegrityError as exc:
        raise Conflict(
            f"another export of {job.target}@{digest[:12]} {path} committed at the same time; "
            "list the version's exports"
        ) from exc
    return number, digest, False
