"""Exports: derived files (GGUF) of a version, built by a job and served like its files
(``registry.services.derived_files``; the job: ``registry.services.job_kinds.export``).

Paths: the default outtype of a kind gets the plain name (``adapter.gguf``: an adapter
in f32; ``model.gguf``: a model in f16), another outtype its suffix
(``adapter-f16.gguf``, ``model-q8_0.gguf``).

Submission resolves and pins the version (and an adapter's base model), refuses what
it can see is wrong (format, outtype, reference, adapter type, base), and dedupes: the
same version, format, outtype and base answer with the existing export (its job,
succeeded) or with the job that is building it. A merged export (``merge_into``: the
adapter merged into a base model, ``registry.services.merged_exports``) is a model file
of the adapter version, at a path that names the base's digest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import Session, col, select

from registry.config import Settings
from registry.errors import (
    Conflict,
    InvalidInput,
    InvalidReference,
    UnsupportedAdapterType,
)
from registry.schemas.compose import JobInput, JobOut
from registry.schemas.export import ExportRequest
from registry.services.audit import Caller
from registry.services.base_models import readable_model_version
from registry.services.job_kinds.export import BASE_CONFIG, ExportSpec
from registry.services.job_queue import JobQueue
from registry.services.jobs import create_job
from registry.services.merged_exports import merged_export_path, resolve_merge_base
from registry.services.names import repository_id, split_registry_ref
from registry.services.refs import resolve_ref
from registry.services.repositories import check_writable, find_repository
from registry.storage.base import BlobStore
from registry.tables import (
    Job,
    Repository,
    Version,
    VersionExport,
    VersionFile,
)

FORMATS = ("gguf",)
DEFAULT_OUTTYPES = {"adapter": "f32", "model": "f16"}
_WAITING_STATES = ("queued", "running")


def export_path(kind: str, outtype: str) -> str:
    """The derived file's path: ``adapter.gguf`` / ``model.gguf`` in the kind's default
    outtype, ``adapter-f16.gguf`` / ``model-q8_0.gguf`` ... otherwise."""
    stem = "adapter" if kind == "adapter" else "model"
    return f"{stem}.gguf" if outtype == DEFAULT_OUTTYPES[kind] else f"{stem}-{outtype}.gguf"


def pinned(repository: str, digest_hex: str) -> str:
    return f"{repository}@sha256:{digest_hex}"


def _check_format(request: ExportRequest, kind: str, merge: bool = False) -> str:
    from composer.export import ADAPTER_OUT_TYPES, OUT_TYPES

    if request.format not in FORMATS:
        raise InvalidInput(
            f"format {request.format!r} is not one the registry exports; use one of "
            f"{', '.join(FORMATS)}"
        )
    outtype = request.outtype or DEFAULT_OUTTYPES["model" if merge else kind]
    if outtype not in OUT_TYPES:
        raise InvalidInput(
            f"outtype {outtype!r} is not one of {', '.join(OUT_TYPES)} "
            f"(default: f32 for adapters, f16 for models)"
        )
    if kind == "adapter" and not merge and outtype not in ADAPTER_OUT_TYPES:
        raise InvalidInput(
            f"outtype {outtype!r} is a quantization mix for models; an adapter exports as "
            f"{', '.join(ADAPTER_OUT_TYPES)}, or merged into its base (merge_into) as any of them"
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


def _registry_base(session: Session, version: Version) -> str | None:
    """The adapter's base model link, else its ``base_model_name_or_path`` when that names a
    model repository here (versions published before links existed)."""
    if version.base_model_link:
        return version.base_model_link
    named = version.base_model
    if not named:
        return None
    try:
        namespace, name, _ref = split_registry_ref(named, "not a registry reference")
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
    base_id, base_version = readable_model_version(
        session, reference, check_access, "base", "--base"
    )
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
    *,
    store: BlobStore,
    settings: Settings,
) -> JobOut:
    """Record an export job of ``namespace/name@ref`` (or find the export or job that
    answers it) and enqueue it; ``reused`` says that an earlier submission answered."""
    repository = find_repository(session, namespace, name)
    repo_id = repository_id(namespace, name)
    version = resolve_ref(session, repository, ref)
    check_writable(repository)
    kind = repository.kind
    merge = request.merge_into is not None
    if merge and kind != "adapter":
        raise InvalidInput(
            f"{repo_id} holds models; merge_into merges an adapter into a base model: export "
            "the adapter's version with merge_into, or this model without it"
        )
    if merge and request.base is not None:
        raise InvalidInput(
            "base names an adapter export's base model; with merge_into the base is the "
            "model merged into: leave base out"
        )
    outtype = _check_format(request, kind, merge)
    if kind == "adapter":
        _check_adapter(version, repo_id)
    merge_base = None
    if request.merge_into is not None:
        merge_base = resolve_merge_base(
            session, store, settings, version, request.merge_into, check_access
        )
        base = None
        merge_hex = merge_base.digest.removeprefix("sha256:")
        path = merged_export_path(merge_base.repository.partition("/")[2], merge_hex, outtype)
    else:
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
    spec = ExportSpec(
        format=request.format,  # type: ignore[arg-type]  # _check_format took it
        outtype=outtype,
        path=path,
        source=pinned(repo_id, version.digest),
        base=pinned(base.repository, base.digest.removeprefix("sha256:")) if base else None,
        merge_into=(
            pinned(merge_base.repository, merge_base.digest.removeprefix("sha256:"))
            if merge_base
            else None
        ),
    )
    second = base or merge_base
    inputs = [source] if second is None else [source, second]
    version_id = version.id
    assert version_id is not None

    def existing(session: Session, key: str) -> Job | None:
        return _existing_answer(session, version_id, path, key, second, repo_id, version)

    event: dict[str, Any] = {"path": path, "format": request.format, "outtype": outtype}
    if merge_base is not None:
        event["merge_into"] = spec.merge_into
    return create_job(
        session,
        caller,
        queue,
        kind="export",
        spec=spec,
        target=repo_id,
        inputs=inputs,
        summary=f"{path} ({request.format}, {outtype}) of ",
        event=event,
        existing=existing,
    )


def _existing_answer(
    session: Session,
    version_id: int,
    path: str,
    key: str,
    base: JobInput | None,
    repo_id: str,
    version: Version,
) -> Job | None:
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
        return session.get(Job, built.job_id)
    waiting: Job | None = session.exec(
        select(Job)
        .where(
            Job.idempotency_key == key,
            Job.kind == "export",
            col(Job.state).in_(_WAITING_STATES),
        )
        .order_by(col(Job.created_at))
    ).first()
    return waiting
