"""Whether a caller may learn that a blob is stored (``HEAD /api/v1/blobs/sha256/{sha256}``).

Blobs are shared between namespaces (one copy of each content), so "is this blob stored"
is a question about every namespace's files. A caller who sees every namespace gets the
store's answer; any other caller only for a blob that a version (a file of its manifest
or one of its exports) of a namespace it may read references, and otherwise the same 404
as for a blob that is not stored. ``lorry push`` asks this to skip uploading a file the
registry already has: a file of an earlier version of the caller's own namespace is
still skipped; a blob uploaded but not yet referenced by any version (a push that failed
before its commit) is uploaded again, which the upload route accepts (it is idempotent).
With ``?namespace=`` the answer is whether that namespace holds the blob, the rule a
version's files must meet (``registry.services.blob_claims``).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists
from sqlmodel import Session, col, select

from registry.errors import BlobNotFound
from registry.services.blob_claims import held
from registry.services.blobs import blob_size, check_sha256
from registry.services.visibility import Visibility
from registry.storage.base import BlobStore
from registry.tables import Repository, Version, VersionExport, VersionFile


def _referenced(visibility: Visibility, sha256: str) -> ColumnElement[bool]:
    visible = visibility.where(col(Repository.namespace), repository=False)
    in_manifest = exists(
        select(col(VersionFile.version_id))
        .join(Version, col(Version.id) == col(VersionFile.version_id))
        .join(Repository, col(Repository.id) == col(Version.repository_id))
        .where(col(VersionFile.sha256) == sha256, visible)
    )
    in_export = exists(
        select(col(VersionExport.version_id))
        .join(Version, col(Version.id) == col(VersionExport.version_id))
        .join(Repository, col(Repository.id) == col(Version.repository_id))
        .where(col(VersionExport.sha256) == sha256, visible)
    )
    return in_manifest | in_export


def visible_blob_size(
    session: Session,
    store: BlobStore,
    visibility: Visibility,
    sha256: str,
    namespace: str | None = None,
) -> int:
    """The stored size of ``sha256`` if the caller may know of it; else ``BlobNotFound``.

    With ``namespace`` (what ``lorry push`` sends): only if that namespace is visible and
    holds the blob (``registry.services.blob_claims``), so that a push skips exactly the
    uploads its version may do without."""
    check_sha256(sha256)
    if namespace is not None and not visibility.everything:
        if not visibility.namespace(namespace) or not held(session, namespace, [sha256]):
            session.rollback()
            raise BlobNotFound(
                f"blob sha256:{sha256} is not held by namespace {namespace!r}; upload it"
            )
        session.rollback()
    elif (
        not visibility.everything
        and not session.exec(select(_referenced(visibility, sha256))).one()
    ):
        raise BlobNotFound(f"blob sha256:{sha256} is not stored; upload it first")
    return blob_size(store, sha256)
