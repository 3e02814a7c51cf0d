"""Garbage collection of blobs that no version references.

A blob is referenced by a file of a version or by an export of one (a derived
file, ``version_exports``). Uploads come first and versions reference them later
(``PUT /blobs`` then ``POST .../versions``), so a blob without a version may belong
to a push in progress. ``collect_garbage``:

1. lists the digests in the blob store, then the digests that versions reference;
2. keeps unreferenced blobs younger than the grace period
   (``LORRY_GC_GRACE_MINUTES``, default 60): a push may be about to commit them;
3. with ``delete=True``, deletes each remaining one in its own write
   transaction that first claims the digest's ``blobs`` row (``INSERT``; a
   version's commit inserts the same row, so the two serialise), checks once
   more that no version references it, deletes the object, and drops the claim.

A publish re-checks that its blobs exist after inserting their rows
(``registry.services.publish``; an export's commit does the same), so a push
that reuses an old unreferenced blob (dedup) while gc deletes it fails with
``missing_blob`` and uploads again on the next try instead of committing a
version with a missing file. A blob that a committed version or export
references is never deleted. The ``blob_uploads`` rows (which namespace uploaded a blob:
``registry.services.blob_claims``) keep nothing alive: an unreferenced blob past the
grace period is deleted with its rows, so its namespace has to upload it again.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, exists
from sqlmodel import Session, col, select

from registry.db import insert_or_ignore, write_transaction
from registry.errors import BlobNotFound
from registry.schemas.trust import GcBlob, GcReport, GcScratch
from registry.services.audit import Caller, record_event
from registry.storage import scratch
from registry.storage.base import BlobStore
from registry.tables import Blob, BlobUpload, VersionExport, VersionFile, utcnow

logger = logging.getLogger(__name__)

BLOB_DELETE = "blob.delete"


def _referenced(session: Session) -> set[str]:
    files = set(session.exec(select(VersionFile.sha256).distinct()).all())
    return files | set(session.exec(select(VersionExport.sha256).distinct()).all())


def _delete_one(session: Session, store: BlobStore, sha256: str, size: int) -> bool:
    """Delete one unreferenced blob under its claimed row; ``False`` if it became referenced."""
    with write_transaction(session):
        row = {"sha256": sha256, "size": size, "created_at": utcnow()}
        claimed = session.execute(
            insert_or_ignore(session, Blob, row, unique=["sha256"]).returning(col(Blob.sha256))
        ).first()
        referenced = session.exec(
            select(
                exists().where(col(VersionFile.sha256) == sha256)
                | exists().where(col(VersionExport.sha256) == sha256)
            )
        ).one()
        if claimed is None or referenced:
            session.rollback()
            return False
        store.delete(sha256)
        session.execute(delete(Blob).where(col(Blob.sha256) == sha256))
        session.execute(delete(BlobUpload).where(col(BlobUpload.sha256) == sha256))
    return True


def collect_garbage(
    session: Session,
    store: BlobStore,
    caller: Caller,
    *,
    delete_blobs: bool = False,
    grace_minutes: int = 60,
    scratch_dir: Path | None = None,
) -> GcReport:
    """List (and with ``delete_blobs``, delete) blobs that no version references, and the
    scratch entries under ``scratch_dir`` that crashed uploads and jobs left
    (``registry.storage.scratch``)."""
    left: list[scratch.Leftover] = []
    if scratch_dir is not None:
        left = scratch.reclaim(scratch_dir) if delete_blobs else scratch.leftovers(scratch_dir)
    now = utcnow()
    stored = list(store.iter_digests())
    session.rollback()
    referenced = _referenced(session)
    session.rollback()
    cutoff = now - timedelta(minutes=grace_minutes)
    unreferenced: list[GcBlob] = []
    kept_recent = 0
    for sha256 in stored:
        if sha256 in referenced:
            continue
        try:
            if store.modified_at(sha256) > cutoff:
                kept_recent += 1
                continue
            size = store.size(sha256)
        except BlobNotFound:
            continue
        unreferenced.append(GcBlob(sha256=sha256, size=size))
    deleted: list[str] = []
    if delete_blobs:
        for blob in unreferenced:
            if _delete_one(session, store, blob.sha256, blob.size):
                deleted.append(blob.sha256)
        if deleted:
            with write_transaction(session):
                record_event(
                    session,
                    caller,
                    BLOB_DELETE,
                    repository=None,
                    target="blobs",
                    after={
                        "deleted": len(deleted),
                        "bytes": sum(b.size for b in unreferenced if b.sha256 in set(deleted)),
                        "digests": deleted[:1000],
                    },
                )
        logger.info("gc deleted %d unreferenced blob(s)", len(deleted))
    return GcReport(
        dry_run=not delete_blobs,
        grace_minutes=grace_minutes,
        unreferenced=unreferenced,
        deleted=deleted,
        kept_recent=kept_recent,
        bytes=sum(blob.size for blob in unreferenced),
        scratch=[GcScratch(name=item.name, bytes=item.bytes) for item in left],
        scratch_bytes=sum(item.bytes for item in left),
    )
