"""Exports: derived files (GGUF) of a version, built by a job and served like its files
(``registry.services.derived_files``; the job: ``registry.jobs.exporting``).

Paths: the default outtype of a kind gets the plain name (``adapter.gguf``: an adapter
in f32; ``model.gguf``: a model in f16), another outtype its suffix
(``adapter-f16.gguf``, ``model-q8_0.gguf``).

Submission resolves and pins the version (and an adapter's base model), refuses what
it can see is wrong (format, outtype, reference, adapter type, base), and dedupes: the
same version, format, outtype and base answer with the existing export (its job,
succeeded) or with the job that is building it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from registry.compose_schemas import JobInput, JobOut
from registry.db import begin_write
from registry.errors import (
    Conflict,
    InvalidInput,
    InvalidReference,
    UnsupportedAdapterType,
)
from registry.export_schemas import ExportList, ExportOut, ExportRequest, ExportSource
from registry.services.audit import Caller, record_event
from registry.services.jobs import append_log, describe_job, job_action, job_target
from registry.services.names import check_repository_name, repository_id
from registry.services.principals import READ
from registry.services.refs import resolve_ref
from registry.services.repositories import find_repository
from registry.tables import (
    ComposeJob,
    Repository,
    Version,
    VersionExport,
    VersionFile,
    utcnow,
)

if TYPE_CHECKING:
    from registry.jobs.base import JobQueue

FORMATS = ("gguf",)
DEFAULT_OUTTYPES = {"adapter": "f32", "model": "f16"}
BASE_CONFIG = "config.json"
_WAITING_STATES = ("queued", "running")


def export_path(kind: str, outtype: str) -> str:
    """The derived file's path: ``adapter.gguf`` / ``model.gguf`` in the kind's default
    outtype, ``adapter-f16.gguf`` / ``model-q8_0.gguf`` ... otherwise."""
    stem = "adapter" if kind == "adapter" else "model"
    return f"{stem}.gguf" if outtype == DEFAULT_OUTTYPES[kind] else f"{stem}-{outtype}.gguf"


def pinned(repository: str, digest_hex: str) -> str:
    return f"{repository}@sha256:{digest_hex}"


def _check_format(request: ExportRequest, kind: str) -> str:
    from composer.export import ADAPTER_OUT_TYPES, OUT_TYPES

    if request.format not in FORMATS:
        raise InvalidInput(
            f"format {request.format!r} is not one the registry exports; use one of "
            f"{', '.join(FORMATS)}"
        )
    outtype = request.outtype or DEFAULT_OUTTYPES[kind]
    if outtype not in OUT_TYPES:
        raise InvalidInput(
            f"outtype {outtype!r} is not one of {', '.join(OUT_TYPES)} "
            f"(default: f32 for adapters, f16 for models)"
        )
    if kind == "adapter" and outtype not in ADAPTER_OUT_TYPES:
        raise InvalidInput(
            f"outtype {outtype!r} is a quantization mix for models; an adapter exports as "
            f"{', '.join(ADAPTER_OUT_TYPES)}"
        )
    return outtype


def _check_adapter(version: Version, repo_id: str) -> None:
    metadata = version.adapter_metadata
    peft_type = metadata.get("peft_type")
    where = f"{repo_id}@{version.number}"
    if peft_type != "LORA":
        raise UnsupportedAdapterType(
            f"{where} is a {peft_type} adapter; GGUF export takes LoRA adapters only"
        )
    if metadata.get("use_dora"):
        raise UnsupportedAdapterType(
            f"{where} is a DoRA adapter (use_dora: true): llama.cpp's LoRA adapters have no "
            "magnitude vector, so GGUF cannot hold it; export a plain LoRA adapter instead"
        )


def _parse_base(text_ref: str) -> tuple[str, str, str]:
    repo, _, ref = text_ref.strip().partition("@")
    namespace, slash, name = repo.partition("/")
    try:
        if not slash or "/" in name:
            raise InvalidInput("not NAMESPACE/NAME")
        check_repository_name(namespace, name)
    except InvalidInput:
        raise InvalidReference(
            f"base {text_ref!r} is not a registry reference; name the base model as "
            "NAMESPACE/NAME[@REF], e.g. `--base acme/llama-3-8b@1`"
        ) from None
    return namespace, name, ref or "latest"


def _registry_base(session: Session, version: Version) -> str | None:
    """The adapter's base model link, else its ``base_model_name_or_path`` when that names a
    model repository here (versions published before links existed)."""
    if version.base_model_link:
        return version.base_model_link
    named = version.base_model
    if not named:
        return None
    try:
        namespace, name, _ref = _parse_base(named)
    except InvalidReference:
        return None
    found = session.exec(
        select(Repository.id).where(Repository.namespace == namespace, Repository.name == name)
    ).first()
    return named if found is not None else None


def _resolve_base(
    session: Session,
    version: Version,
    repo_id: str,
    kind: str,
    requested: str | None,
    check_access: Callable[[str, str], None] | None,
) -> JobInput | None:
    if kind == "model":
        if requested is not None:
            raise InvalidInput(
                f"{repo_id} holds models, which export with their own config.json; "
                "leave base out (`--base` in the CLI; it is for adapters)"
            )
        return None
    reference = requested or _registry_base(session, version)
    if reference is None:
        raise InvalidInput(
            f"the base model of {repo_id}@{version.number} is {version.base_model!r}, which is "
            "not a repository of this registry; push the base model as a model repository and "
            "give it as base (`--base NAMESPACE/NAME[@REF]` in the CLI; its config.json names "
            "the GGUF tensors)"
        )
    namespace, name, ref = _parse_base(reference)
    if check_access is not None:
        check_access(READ, namespace)
    base_repository = find_repository(session, namespace, name)
    base_id = repository_id(namespace, name)
    if base_repository.kind != "model":
        raise InvalidInput(
            f"base {reference!r}: {base_id} holds {base_repository.kind}s; the base of an "
            "adapter export is a model repository"
        )
    base_version = resolve_ref(session, base_repository, ref)
    if session.get(VersionFile, (base_version.id, BASE_CONFIG)) is None:
        raise InvalidInput(
            f"base {base_id}@{base_version.number} has no {BASE_CONFIG}, which the export "
            "reads for the architecture and tensor names; give a version that has it"
        )
    return JobInput(
        ref=reference,
        repository=base_id,
        version=base_version.number,
        digest=f"sha256:{base_version.digest}",
        role="base",
    )


def _idempotency_key(spec: dict[str, Any]) -> str:
    canonical = json.dumps({"export": spec}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _base_digest(row: VersionExport) -> str | None:
    base = row.lineage.get("base")
    return str(base["digest"]) if isinstance(base, dict) else None


def submit_export(
    session: Session,
    caller: Caller,
    queue: JobQueue,
    namespace: str,
    name: str,
    ref: str,
    request: ExportRequest,
    check_access: Callable[[str, str], None] | None = None,
) -> JobOut:
    """Record an export job of ``namespace/name@ref`` (or find the export or job that
    answers it) and enqueue it; ``reused`` says that an earlier submission answered."""
    repository = find_repository(session, namespace, name)
    repo_id = repository_id(namespace, name)
    version = resolve_ref(session, repository, ref)
    kind = repository.kind
    outtype = _check_format(request, kind)
    if kind == "adapter":
        _check_adapter(version, repo_id)
    base = _resolve_base(session, version, repo_id, kind, request.base, check_access)
    path = export_path(kind, outtype)
    if session.get(VersionFile, (version.id, path)) is not None:
        raise Conflict(
            f"{repo_id}@{version.number} has a pushed file {path!r}, so an export cannot take "
            "that path; download that file instead"
        )
    source = JobInput(
        ref=f"{repo_id}@{ref}",
        repository=repo_id,
        version=version.number,
        digest=f"sha256:{version.digest}",
    )
    spec: dict[str, Any] = {
        "format": request.format,
        "outtype": outtype,
        "path": path,
        "source": pinned(repo_id, version.digest),
        "base": pinned(base.repository, base.digest.removeprefix("sha256:")) if base else None,
    }
    key = _idempotency_key(spec)
    inputs = [source] if base is None else [source, base]
    assert version.id is not None
    try:
        begin_write(session)
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
            )
        answered = _existing_answer(session, version.id, path, key, base, repo_id, version)
        if answered is not None:
            session.rollback()
            return describe_job(session, answered, reused=True)
        row = ComposeJob(
            id=uuid.uuid4().hex,
            kind="export",
            state="queued",
            target=repo_id,
            output_kind=request.format,
            queue="any",
            recipe=spec,
            inputs=[item.model_dump(mode="json") for item in inputs],
            idempotency_key=key,
            progress_done=0,
            progress_total=0,
            log=[],
            attempts=0,
            cancel_requested=False,
            created_by=caller.actor,
            request_id=caller.request_id,
            created_at=utcnow(),
        )
        append_log(
            row,
            f"submitted; {path} ({request.format}, {outtype}) of "
            + ", ".join(f"{item.ref} -> {item.repository}@{item.version}" for item in inputs),
        )
        session.add(row)
        record_event(
            session,
            caller,
            job_action("export", "submit"),
            repository=repo_id,
            target=job_target(row.id),
            after={
                "job": row.id,
                "path": path,
                "format": request.format,
                "outtype": outtype,
                "inputs": [
                    {"repository": i.repository, "version": i.version, "digest": i.digest}
                    for i in inputs
                ],
                "idempotency_key": key,
            },
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    session.refresh(row)
    queue.enqueue(row.id, row.queue)
    return describe_job(session, row)


def _existing_answer(
    session: Session,
    version_id: int,
    path: str,
    key: str,
    base: JobInput | None,
    repo_id: str,
    version: Version,
) -> ComposeJob | None:
    """The job that answers this submission: the one that built the export, or one that
    is building it; ``Conflict`` if the path was exported against another base."""
    built = session.get(VersionExport, (version_id, path))
    if built is not None:
        if _base_digest(built) != (base.digest if base else None):
            raise Conflict(
                f"{repo_id}@{version.number} already has {path}, exported against base "
                f"{(built.lineage.get('base') or {}).get('repository')} "
                f"({_base_digest(built)}); one version has one {path}: download that one"
            )
        return session.get(ComposeJob, built.job_id)
    waiting: ComposeJob | None = session.exec(
        select(ComposeJob)
        .where(
            ComposeJob.idempotency_key == key,
            ComposeJob.kind == "export",
            col(ComposeJob.state).in_(_WAITING_STATES),
        )
        .order_by(col(ComposeJob.created_at))
    ).first()
    return waiting


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


def list_exports(session: Session, namespace: str, name: str, ref: str) -> ExportList:
    repository = find_repository(session, namespace, name)
    version = resolve_ref(session, repository, ref)
    repo_id = repository_id(namespace, name)
    return ExportList(
        source=ExportSource(
            repository=repo_id, version=version.number, digest=f"sha256:{version.digest}"
        ),
        items=exports_of(session, repo_id, version),
    )
