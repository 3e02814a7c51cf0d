"""Which blobs a namespace holds: the claim rule for versions that name blobs.

Blobs are stored once for every namespace (content addressing), so a stored sha256
proves nothing about who may use it: a writer who learned another namespace's file
digest and size must not publish that file into their own namespace and download it.
A version may name a blob only if the target namespace holds it:

- a version (a file of its manifest) or an export of the namespace references it
  (what ``registry.services.blob_visibility`` counts for one namespace), or
- the server received and hashed its bytes for the namespace: ``PUT /api/v1/blobs``
  with ``?namespace=``, an LFS upload URL (its signed grant names the namespace), a
  Xet shard rebuilt for a repository of it, or inline content of a Hub commit
  (recorded here in ``blob_uploads``; a commit's inline files count as uploaded by that
  commit).

A caller who may read every namespace (a token for ``*``, or the local caller of a
registry without tokens) may name any stored blob: it may read every version's files
anyway, and ``HEAD /api/v1/blobs`` gives it the store's answer; this keeps clients that
name no namespace on upload working there. A blob not held is refused with
``blob_not_uploaded`` whether or not it is stored, so the answer says nothing of other
namespaces. Re-uploading stored bytes is cheap for the
store (deduplicated) and gives the namespace its hold. ``lorry gc`` drops the rows of
the blobs it deletes; the rows never keep a blob alive (``registry.services.gc``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from sqlalchemy import union
from sqlmodel import Session, col, select

from registry.db import insert_or_ignore, write_transaction
from registry.errors import BlobNotUploaded
from registry.services.principals import Principal
from registry.services.visibility import Visibility, namespace_matches
from registry.tables import BlobUpload, Repository, Version, VersionExport, VersionFile, utcnow
from registry.validation import ManifestEntry


def held(session: Session, namespace: str, digests: Collection[str]) -> set[str]:
    """The digests of ``digests`` that ``namespace`` holds."""
    if not digests:
        return set()
    wanted = sorted(set(digests))
    files = (
        select(col(VersionFile.sha256))
        .join(Version, col(Version.id) == col(VersionFile.version_id))
        .join(Repository, col(Repository.id) == col(Version.repository_id))
        .where(col(Repository.namespace) == namespace, col(VersionFile.sha256).in_(wanted))
    )
    exports = (
        select(col(VersionExport.sha256))
        .join(Version, col(Version.id) == col(VersionExport.version_id))
        .join(Repository, col(Repository.id) == col(Version.repository_id))
        .where(col(Repository.namespace) == namespace, col(VersionExport.sha256).in_(wanted))
    )
    uploads = select(col(BlobUpload.sha256)).where(
        col(BlobUpload.namespace) == namespace, col(BlobUpload.sha256).in_(wanted)
    )
    return {row[0] for row in session.execute(union(files, exports, uploads)).all()}


def sees_everything(principal: Principal) -> bool:
    """Whether the caller may read every namespace (so the claim rule does not bind it)."""
    return Visibility.of(principal).everything


def check_held(
    session: Session,
    principal: Principal,
    namespace: str,
    entries: Sequence[ManifestEntry],
    uploaded: Collection[str] = (),
) -> None:
    """Refuse (422 ``blob_not_uploaded``) entries whose blob ``namespace`` does not hold;
    ``uploaded``: digests whose bytes the request itself carried."""
    if sees_everything(principal):
        return
    wanted = {entry.sha256 for entry in entries} - set(uploaded)
    found = held(session, namespace, wanted)
    session.rollback()
    missing = [entry for entry in entries if entry.sha256 in wanted - found]
    if missing:
        names = ", ".join(f"{entry.path} (sha256:{entry.sha256})" for entry in missing[:20])
        more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise BlobNotUploaded(
            f"{len(missing)} file(s) were not uploaded to the namespace {namespace!r}: "
            f"{names}{more}; upload each file's bytes for this namespace "
            f"(PUT /api/v1/blobs/sha256/<hex>?namespace={namespace}, or the Hub's LFS/Xet "
            "upload) before committing (`lorry push` does this)",
            path=missing[0].path,
        )


def record_uploads(session: Session, namespaces: Iterable[str], sha256: str) -> None:
    """Record that the server received ``sha256``'s bytes for each of ``namespaces``."""
    now = utcnow()
    rows = [
        {"namespace": ns, "sha256": sha256, "created_at": now} for ns in sorted(set(namespaces))
    ]
    if not rows:
        return
    with write_transaction(session):
        session.execute(insert_or_ignore(session, BlobUpload, rows, unique=["namespace", "sha256"]))


def token_namespaces(patterns: Sequence[str]) -> list[str]:
    """The namespaces that a token's patterns name literally (``acme`` of ``acme/*``): where
    an upload that names no namespace is recorded (clients older than ``?namespace=``)."""
    names = []
    for pattern in patterns:
        base = pattern[:-2] if pattern.endswith("/*") else pattern
        if base and not any(char in base for char in "*?[") and namespace_matches(pattern, base):
            names.append(base)
    return names
