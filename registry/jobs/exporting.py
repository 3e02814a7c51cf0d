"""Running one export job: fetch the pinned version (and its base model's config.json),
write the GGUF with ``composer.export``, store it as a blob, record it as a derived file.

The composer writes the file under a temporary name and renames it only when it is
complete; the blob is stored before its row is committed, so a failure at any point
leaves no export row (at most an unreferenced blob, which ``lorry gc`` collects).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from registry.config import Settings
from registry.jobs.workspace import library_versions, materialise, store_file
from registry.services.audit import Caller
from registry.services.derived_files import record_export
from registry.services.exports import BASE_CONFIG
from registry.storage.base import BlobStore
from registry.storage.scratch import scratch_directory
from registry.tables import ComposeJob, Repository, Version, VersionFile

if TYPE_CHECKING:
    from composer.export import GGUFExport

__all__ = ["StepReport", "build_export"]

StepReport = Callable[[str | None, int, int], None]
"""``(tensor, done, total)`` after each tensor; raises to stop the job."""

_LIBRARIES = ("lorry", "gguf", "numpy", "safetensors", "torch")


def _split(pinned: str) -> tuple[str, str, str]:
    repository, _, digest = pinned.partition("@sha256:")
    namespace, _, name = repository.partition("/")
    return namespace, name, digest


def _version(session: Session, pinned: str) -> Version:
    namespace, name, digest = _split(pinned)
    return session.exec(
        select(Version)
        .join(Repository, col(Repository.id) == col(Version.repository_id))
        .where(
            Repository.namespace == namespace,
            Repository.name == name,
            Version.digest == digest,
        )
    ).one()


def _files(engine: Engine, pinned: str, only: str | None = None) -> list[tuple[str, str]]:
    with Session(engine) as session:
        version = _version(session, pinned)
        query = select(VersionFile).where(VersionFile.version_id == version.id)
        if only is not None:
            query = query.where(VersionFile.path == only)
        return [(row.path, row.sha256) for row in session.exec(query).all()]


def _lineage(job: ComposeJob, result: GGUFExport) -> dict[str, Any]:
    by_role = {item.get("role", "input"): item for item in job.inputs}

    def parent(role: str) -> dict[str, Any] | None:
        item = by_role.get(role)
        if item is None:
            return None
        return {
            "repository": item["repository"],
            "version": item["version"],
            "digest": item["digest"],
        }

    return {
        "exported_from": parent("input"),
        "base": parent("base"),
        "job": job.id,
        "format": job.recipe["format"],
        "outtype": result.outtype,
        "kind": result.kind,
        "architecture": result.architecture,
        "tensors": result.tensors,
        "tokenizer_pre": result.tokenizer_pre,
        "libraries": library_versions(_LIBRARIES),
    }


def build_export(
    engine: Engine, store: BlobStore, settings: Settings, job: ComposeJob, report: StepReport
) -> tuple[int, str, str]:
    """Build and record the job's export; ``(version number, version digest hex, note)``."""
    from composer.export import export_gguf

    spec = job.recipe
    with scratch_directory(settings.tmp_dir, f"export-{job.id}-") as work:
        source_dir = work / "source"
        materialise(store, _files(engine, spec["source"]), source_dir)
        base_dir = None
        if spec.get("base"):
            base_dir = work / "base"
            materialise(store, _files(engine, spec["base"], BASE_CONFIG), base_dir)
        source = next(item for item in job.inputs if item.get("role", "input") == "input")
        out = work / "out" / str(spec["path"])
        result = export_gguf(
            source_dir,
            out,
            outtype=str(spec["outtype"]),
            base=base_dir,
            name=f"{source['repository']}@{source['version']}",
            progress=report,
        )
        sha256, size = store_file(store, out)
        with Session(engine) as session:
            number, digest, reused = record_export(
                session,
                store,
                Caller(actor=job.created_by, request_id=job.request_id),
                job,
                sha256=sha256,
                size=size,
                lineage=_lineage(job, result),
            )
    if reused:
        return number, digest, f"an identical {spec['path']} existed"
    return number, digest, f"exported {spec['path']} (sha256:{sha256}, {size} bytes)"
