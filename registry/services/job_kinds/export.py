"""The ``export`` job kind: fetch the pinned version (and its base model's config.json),
write the GGUF with ``composer.export``, store it as a blob, record it as a derived file.
A merged export (``merge_into``) fetches the whole base model and merges the adapter
into it on the way to GGUF, with the code the local ``lorry export gguf --merge-into``
runs, so that both write the same bytes.

The composer writes the file under a temporary name and renames it only when it is
complete; the blob is stored before its row is committed, so a failure at any point
leaves no export row (at most an unreferenced blob, which ``lorry gc`` collects).
Submission: ``registry.services.exports``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from registry.schemas.export import JobExport
from registry.services.audit import Caller
from registry.services.derived_files import record_export
from registry.services.job_kinds.base import (
    JobContext,
    JobEvents,
    JobKind,
    JobOutcome,
    canonical_key,
)
from registry.services.job_kinds.workspace import library_versions, materialise
from registry.services.job_kinds.workspace import store_file as store_output
from registry.storage.scratch import scratch_directory
from registry.tables import Job, Repository, Version, VersionExport, VersionFile

if TYPE_CHECKING:
    from composer.export import GGUFExport

__all__ = ["BASE_CONFIG", "EVENTS", "ExportKind", "ExportSpec"]

EVENTS = JobEvents(
    submit="export.submit",
    succeed="export.succeed",
    fail="export.fail",
    cancel="export.cancel",
)
BASE_CONFIG = "config.json"
"""The one file of an adapter's base model that an export reads."""
_LIBRARIES = ("lorry", "gguf", "numpy", "safetensors", "torch")


class ExportSpec(BaseModel):
    """What an export job writes: ``path`` of ``source`` in ``format``/``outtype``; an
    adapter's ``base`` model gives the architecture. References are pinned
    (``ns/name@sha256:<digest>``). ``merge_into``: the model the adapter ``source`` is
    merged into, for one model file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["gguf"]
    outtype: str
    path: str
    source: str
    base: str | None = None
    merge_into: str | None = None


class ExportKind(JobKind):
    name = "export"
    events = EVENTS

    def spec_model(self) -> type[BaseModel]:
        return ExportSpec

    def idempotency_key(self, spec: dict[str, Any], target: str) -> str:
        # the source (and a merge's base) is pinned in the spec, and the target is the
        # source's repository; a spec without a merge keys as it did before merges existed
        document = {key: value for key, value in spec.items() if value is not None or key == "base"}
        return canonical_key({"export": document})

    def dump_spec(self, spec: BaseModel) -> dict[str, Any]:
        # a spec without a merge is stored as it was before merges existed
        document = super().dump_spec(spec)
        if document.get("merge_into") is None:
            document.pop("merge_into", None)
        return document

    def output_kind(self, spec: dict[str, Any]) -> str:
        return str(spec["format"])

    def describe(self, session: Session, job: Job) -> dict[str, Any]:
        """The export's file: the path and base of its spec, with the sha256 and size of
        the derived file once the version has it."""
        spec = ExportSpec.model_validate(job.spec)
        namespace, _, name = job.target.partition("/")
        source_digest = spec.source.partition("@sha256:")[2]
        built = session.exec(
            select(VersionExport)
            .join(Version, col(Version.id) == col(VersionExport.version_id))
            .join(Repository, col(Repository.id) == col(Version.repository_id))
            .where(
                Repository.namespace == namespace,
                Repository.name == name,
                Version.digest == source_digest,
                VersionExport.path == spec.path,
            )
        ).first()
        done = built is not None and job.state == "succeeded"
        return {
            "export": JobExport(
                format=spec.format,
                outtype=spec.outtype,
                path=spec.path,
                base=spec.base,
                merge_into=spec.merge_into,
                sha256=built.sha256 if done and built is not None else None,
                size=built.size if done and built is not None else None,
            )
        }

    def succeed_details(self, job: Job) -> dict[str, Any]:
        return {"path": job.spec["path"]}

    def execute(self, context: JobContext, job: Job) -> JobOutcome:
        """Build and record the job's export."""
        from composer.export import export_gguf

        spec = ExportSpec.model_validate(job.spec)
        with scratch_directory(context.settings.tmp_dir, f"export-{job.id}-") as work:
            source_dir = work / "source"
            materialise(context.store, _files(context.engine, spec.source), source_dir)
            base_dir = merge_dir = None
            if spec.base:
                base_dir = work / "base"
                materialise(context.store, _files(context.engine, spec.base, BASE_CONFIG), base_dir)
            if spec.merge_into:
                merge_dir = work / "merge-into"
                materialise(context.store, _files(context.engine, spec.merge_into), merge_dir)
            source = next(item for item in job.inputs if item.get("role", "input") == "input")
            out = work / "out" / spec.path
            result = export_gguf(
                source_dir,
                out,
                outtype=spec.outtype,
                base=base_dir,
                merge_into=merge_dir,
                name=f"{source['repository']}@{source['version']}",
                progress=context.report,
            )
            sha256, size = store_output(context.store, out)
            with Session(context.engine) as session:
                number, digest, reused = record_export(
                    session,
                    context.store,
                    Caller(actor=job.created_by, request_id=job.request_id),
                    job,
                    sha256=sha256,
                    size=size,
                    lineage=_lineage(job, spec, result),
                    merged_into=_version_id(session, spec.merge_into),
                )
        if reused:
            return JobOutcome(number, digest, f"an identical {spec.path} existed")
        return JobOutcome(number, digest, f"exported {spec.path} (sha256:{sha256}, {size} bytes)")


def _split(pinned: str) -> tuple[str, str, str]:
    repository, _, digest = pinned.partition("@sha256:")
    namespace, _, name = repository.partition("/")
    return namespace, name, digest


def _files(engine: Engine, pinned: str, only: str | None = None) -> list[tuple[str, str]]:
    namespace, name, digest = _split(pinned)
    with Session(engine) as session:
        version = session.exec(
            select(Version)
            .join(Repository, col(Repository.id) == col(Version.repository_id))
            .where(
                Repository.namespace == namespace,
                Repository.name == name,
                Version.digest == digest,
            )
        ).one()
        query = select(VersionFile).where(VersionFile.version_id == version.id)
        if only is not None:
            query = query.where(VersionFile.path == only)
        return [(row.path, row.sha256) for row in session.exec(query).all()]


def _version_id(session: Session, pinned: str | None) -> int | None:
    if pinned is None:
        return None
    namespace, name, digest = _split(pinned)
    return session.exec(
        select(Version.id)
        .join(Repository, col(Repository.id) == col(Version.repository_id))
        .where(Repository.namespace == namespace, Repository.name == name, Version.digest == digest)
    ).first()


def _lineage(job: Job, spec: ExportSpec, result: GGUFExport) -> dict[str, Any]:
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
        "merged": spec.merge_into is not None,
        "job": job.id,
        "format": spec.format,
        "outtype": result.outtype,
        "kind": result.kind,
        "architecture": result.architecture,
        "tensors": result.tensors,
        "tokenizer_pre": result.tokenizer_pre,
        "libraries": library_versions(_LIBRARIES),
    }
