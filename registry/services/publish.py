"""Publishing a version: validate everything first, then commit it in one transaction."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from registry.config import Settings
from registry.db import insert_or_ignore, write_transaction
from registry.errors import BlobNotFound, Conflict, InvalidInput, MissingBlob
from registry.schemas.repos import FileEntry, PublishRequest, VersionOut
from registry.services.aliases import point_alias
from registry.services.audit import VERSION_PUBLISH, Caller, record_event
from registry.services.base_models import link_base_model
from registry.services.blob_claims import check_held
from registry.services.card_evals import CardEvidence, read_card_evidence, record_card_evidence
from registry.services.names import check_alias_name, check_repository_name, repository_id
from registry.services.repositories import lock_or_create_repository
from registry.services.tombstones import highest_deleted_number
from registry.services.versions import version_out
from registry.storage.base import BlobStore
from registry.storage.scratch import disk_errors, new_file
from registry.tables import Blob, Repository, Version, VersionFile, utcnow
from registry.validation import (
    MODEL_CARD,
    ManifestEntry,
    check_manifest,
    generate_model_card,
    load_model_card,
    parse_model_card,
    validate_model,
)
from registry.validation.adapter import validate_adapter_tensors
from registry.validation.base_model_names import card_with_usable_base
from registry.validation.nonfinite import adapter_nonfinite_tensors
from registry.validation.trainer_state import TRAINER_STATE_KEY, scan_trainer_state

Precondition = Callable[[Session, Repository], None]
"""Checked under the repository's lock before the version is numbered (a Hub commit's
``parentCommit``); raising rolls the publish back."""


def manifest_digest(entries: Sequence[ManifestEntry | FileEntry]) -> str:
    """Hex sha256 of the canonical manifest JSON: the version's digest."""
    canonical = json.dumps(
        sorted(
            ({"path": e.path, "sha256": e.sha256, "size": e.size} for e in entries),
            key=lambda item: str(item["path"]),
        ),
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_blobs(store: BlobStore, entries: Sequence[ManifestEntry]) -> None:
    missing: list[str] = []
    for entry in entries:
        try:
            stored = store.size(entry.sha256)
        except BlobNotFound:
            missing.append(f"{entry.path} (sha256:{entry.sha256})")
            continue
        if stored != entry.size:
            raise InvalidInput(
                f"file {entry.path!r} is listed with size {entry.size} but its blob "
                f"sha256:{entry.sha256} holds {stored} bytes; send the file's real size",
                path=entry.path,
            )
    if missing:
        raise MissingBlob(
            f"{len(missing)} file(s) of the version were not uploaded: {', '.join(missing)}; "
            "upload each with PUT /api/v1/blobs/sha256/<hex> before committing the version "
            "(`lorry push` does this)"
        )


def store_bytes(
    store: BlobStore, settings: Settings, data: bytes, path: str = MODEL_CARD
) -> ManifestEntry:
    """Store ``data`` as a blob (unreferenced until a version lists it) for ``path``."""
    sha256 = hashlib.sha256(data).hexdigest()
    if not store.exists(sha256):
        fd, staged, lock = new_file(settings.tmp_dir, "card-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            store.put_file(staged, sha256)
        finally:
            staged.unlink(missing_ok=True)
            lock.release()
    return ManifestEntry(path=path, sha256=sha256, size=len(data))


def _insert_blob_rows(session: Session, entries: Sequence[ManifestEntry]) -> None:
    now = utcnow()
    sizes = {entry.sha256: entry.size for entry in entries}
    rows = [{"sha256": sha, "size": size, "created_at": now} for sha, size in sizes.items()]
    session.execute(insert_or_ignore(session, Blob, rows, unique=["sha256"]))


def _card_tags(card: dict[str, Any]) -> list[str] | None:
    tags = card.get("tags")
    if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
        return list(tags)
    return None


def _commit_version(
    session: Session,
    namespace: str,
    name: str,
    request: PublishRequest,
    entries: Sequence[ManifestEntry],
    digest: str,
    metadata: dict[str, Any],
    card: dict[str, Any],
    caller: Caller,
    lineage: dict[str, Any] | None = None,
    precondition: Precondition | None = None,
    base_model_link: str | None = None,
    evidence: Sequence[CardEvidence] = (),
) -> tuple[Repository, Version]:
    repo_id = repository_id(namespace, name)
    repository = lock_or_create_repository(session, namespace, name, request.kind, caller)
    if precondition is not None:
        precondition(session, repository)
    latest = session.exec(
        select(func.max(col(Version.number))).where(Version.repository_id == repository.id)
    ).one()
    if latest is None:
        # An empty repository (Hub ``create_repo``) takes the kind of its first version.
        repository.kind = request.kind
    deleted = highest_deleted_number(session, repo_id)
    if repository.kind != request.kind:
        raise Conflict(
            f"{repo_id} holds {repository.kind}s; push this {request.kind} to another repository"
        )
    same = session.exec(
        select(Version.number).where(
            Version.repository_id == repository.id, Version.digest == digest
        )
    ).first()
    if same is not None:
        raise Conflict(
            f"these files are identical to version {same} of {repo_id} (digest sha256:{digest}); "
            f"nothing was published. To point an alias at it, run "
            f"`lorry alias set {repo_id} ALIAS {same}`"
        )
    assert repository.id is not None
    version = Version(
        repository_id=repository.id,
        number=max(latest or 0, deleted or 0) + 1,
        digest=digest,
        message=request.message,
        kind=request.kind,
        size=sum(entry.size for entry in entries),
        base_model=metadata.get("base_model_name_or_path"),
        base_model_link=base_model_link,
        adapter_metadata=metadata,
        card=card,
        lineage=lineage,
        created_by=caller.actor,
        created_at=utcnow(),
    )
    session.add(version)
    session.flush()
    assert version.id is not None
    session.add_all(
        VersionFile(version_id=version.id, path=e.path, sha256=e.sha256, size=e.size)
        for e in entries
    )
    _insert_blob_rows(session, entries)
    tags = _card_tags(card)
    if tags is not None:
        repository.tags = tags
    description = card.get("description")
    if isinstance(description, str):
        repository.description = description
    session.add(repository)
    record_event(
        session,
        caller,
        VERSION_PUBLISH,
        repository=repo_id,
        target=f"{repo_id}@{version.number}",
        after={
            "version": version.number,
            "digest": f"sha256:{digest}",
            "size": version.size,
            "files": len(entries),
            "message": request.message,
        },
    )
    record_card_evidence(session, caller, repository, version, evidence)
    if request.alias is not None:
        point_alias(session, repository, request.alias, version, request.message, caller)
    session.flush()
    return repository, version


def _base_model_link(
    session: Session, namespace: str, name: str, request: PublishRequest, metadata: dict[str, Any]
) -> str | None:
    if request.kind != "adapter":
        if request.base_model:
            raise InvalidInput(
                "base_model links an adapter to the model it was trained on; leave it out "
                "when pushing a model"
            )
        return None
    setting = session.exec(
        select(Repository.base_model_link).where(
            Repository.namespace == namespace, Repository.name == name
        )
    ).first()
    return link_base_model(
        session, request.base_model, setting, metadata.get("base_model_name_or_path")
    )


def _validate(
    session: Session,
    store: BlobStore,
    settings: Settings,
    namespace: str,
    name: str,
    request: PublishRequest,
    entries: list[ManifestEntry],
) -> tuple[list[ManifestEntry], dict[str, Any], dict[str, Any], str | None]:
    """Check the files and read their metadata; ``(entries, metadata, card, base model
    link)``, where the entries gain a generated model card when an adapter has none."""
    _check_blobs(store, entries)
    metadata: dict[str, Any] = {}
    if request.kind == "adapter":
        validated, tensors = validate_adapter_tensors(entries, store.read_bytes, settings)
        metadata = validated.to_dict()
        metadata["nonfinite_tensors"] = adapter_nonfinite_tensors(
            entries, store.read_bytes, store.open_range, settings, tensors
        )
    else:
        metadata = validate_model(entries, store.read_bytes, settings)
    trainer_state = scan_trainer_state(entries, store.read_bytes)
    if trainer_state:
        metadata[TRAINER_STATE_KEY] = trainer_state
    link = _base_model_link(session, namespace, name, request, metadata)
    card_entry = next((e for e in entries if e.path == MODEL_CARD), None)
    if card_entry is not None:
        card = load_model_card(card_entry, store.read_bytes, settings)
    elif request.kind == "adapter":
        card_metadata = metadata
        if link is not None:
            card_metadata = {**metadata, "base_model_name_or_path": link.partition("@")[0]}
        text = generate_model_card(repository_id(namespace, name), card_metadata)
        entries = [*entries, store_bytes(store, settings, text.encode("utf-8"))]
        card = parse_model_card(text)
    else:
        card = {}
    if request.kind == "adapter":
        card = card_with_usable_base(card, link)
    return entries, metadata, card, link


def publish_version(
    session: Session,
    store: BlobStore,
    settings: Settings,
    caller: Caller,
    namespace: str,
    name: str,
    request: PublishRequest,
    *,
    lineage: dict[str, Any] | None = None,
    precondition: Precondition | None = None,
    uploaded: Collection[str] = (),
) -> VersionOut:
    """Validate the pushed manifest and adapter, then commit version N+1 atomically.

    Everything that can be refused is checked before the database is touched;
    the repository row (created on first push), the version, its files, blob
    rows, audit events and the optional alias commit together or not at all.
    Identical files to an existing version are refused (409) rather than
    numbered again: the digest identifies one version of a repository. Every file's blob
    must be held by ``namespace`` (``registry.services.blob_claims``; a caller who reads
    every namespace excepted) unless ``uploaded``
    (digests whose bytes this request carried, or that the server made) names it.
    """
    check_repository_name(namespace, name)
    if request.alias is not None:
        check_alias_name(request.alias)
    entries = [ManifestEntry(path=f.path, sha256=f.sha256, size=f.size) for f in request.files]
    check_manifest(entries, settings)
    check_held(session, caller.principal, namespace, entries, uploaded)
    # A storage failure (a full disk, S3 gone) is a 503 with no path in it, never a 500;
    # the S3 store translates its own errors, the local disk's surface as OSError.
    with disk_errors("read the version's files or store its model card"):
        entries, metadata, card, link = _validate(
            session, store, settings, namespace, name, request, entries
        )
        evidence = read_card_evidence(card, entries, store.read_bytes, settings)
    digest = manifest_digest(entries)

    try:
        with write_transaction(session):
            repository, version = _commit_version(
                session,
                namespace,
                name,
                request,
                entries,
                digest,
                metadata,
                card,
                caller,
                lineage,
                precondition,
                base_model_link=link,
                evidence=evidence,
            )
            # Once more, under the blob rows just inserted: ``lorry gc`` may have deleted an
            # unreferenced blob that this push reused (see registry.services.gc).
            with disk_errors("check the version's files"):
                _check_blobs(store, entries)
    except IntegrityError as exc:
        raise Conflict(
            f"another change to {repository_id(namespace, name)} happened at the same time "
            "and the push was rolled back; push again"
        ) from exc
    return version_out(session, repository, version)
