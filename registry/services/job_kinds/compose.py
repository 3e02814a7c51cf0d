"""The ``compose`` job kind: fetch the pinned inputs, compose, publish a version.

Its spec is the composition recipe (``composer.Recipe``) with every registry
reference pinned to ``ns/name@sha256:<digest>``, stored without the fields equal to
their defaults, so two spellings of one recipe give one document and one key.

A recipe's ``evaluate`` list (``registry.services.evaluations``) is kept in the spec
beside the recipe, pinned, so it is part of the job's idempotency key (the same recipe
with other evaluations asks for other work); the composer, the version's lineage and
its card never see it, so the composed bytes, and the version's digest, do not depend on
it. Once the version is published, ``after_success`` submits one ``eval`` job for each.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from sqlmodel import Session, col, select

from registry.schemas.repos import FileEntry, PublishRequest
from registry.services.audit import Caller
from registry.services.job_kinds.base import (
    JobContext,
    JobEvents,
    JobKind,
    JobOutcome,
    canonical_key,
)
from registry.services.job_kinds.workspace import library_versions, materialise, store_file
from registry.services.publish import manifest_digest, publish_version
from registry.storage.scratch import scratch_directory
from registry.tables import Job, Repository, Version, VersionFile
from registry.validation import ManifestEntry

if TYPE_CHECKING:
    import composer

__all__ = ["EVALUATE", "EVENTS", "ComposeKind", "ComposeSubmission", "recipe_document"]

EVENTS = JobEvents(
    submit="composition.submit",
    succeed="composition.succeed",
    fail="composition.fail",
    cancel="composition.cancel",
)
_LIBRARIES = ("lorry", "torch", "safetensors", "mergekit", "peft")
EVALUATE = "evaluate"
"""The spec's key of the recipe's evaluations (never given to the composer)."""


class ComposeSubmission(BaseModel):
    """A pinned recipe (``composer.Recipe``) and the evaluations planned for its result."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    recipe: Any
    evaluate: list[dict[str, Any]] = []


def _recipe_only(spec: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in spec.items() if key != EVALUATE}


def recipe_document(recipe: BaseModel) -> dict[str, Any]:
    """The recipe as canonical data: fields equal to their defaults left out, so two
    spellings of one recipe (``weight: 1.0`` written or not) give one document."""
    document: dict[str, Any] = recipe.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return document


class ComposeKind(JobKind):
    name = "compose"
    events = EVENTS

    def spec_model(self) -> type[BaseModel]:
        from composer.recipe import Recipe  # torch loads with the first composition

        return Recipe

    def dump_spec(self, spec: BaseModel) -> dict[str, Any]:
        evaluate: list[dict[str, Any]] = []
        if isinstance(spec, ComposeSubmission):
            evaluate = spec.evaluate
            spec = spec.recipe
        super().dump_spec(spec)
        document = recipe_document(spec)
        if evaluate:
            document[EVALUATE] = evaluate
        return document

    def parse_spec(self, document: dict[str, Any]) -> BaseModel:
        from composer import parse_recipe

        return parse_recipe(_recipe_only(document))

    def idempotency_key(self, spec: dict[str, Any], target: str) -> str:
        return canonical_key({"recipe": spec, "target": target})

    def output_kind(self, spec: dict[str, Any]) -> str:
        output = spec.get("output") or {}
        return "model" if output.get("type") == "merged" else "adapter"

    def queue_for(self, spec: BaseModel) -> str:
        """``gpu`` for recipes that need CUDA, ``cpu`` for CPU-only ones, else ``any``."""
        if isinstance(spec, ComposeSubmission):
            spec = spec.recipe
        return {"cuda": "gpu", "cpu": "cpu"}.get(str(getattr(spec, "device", "auto")), "any")

    def execute(self, context: JobContext, job: Job) -> JobOutcome:
        """Compose and publish to the job's target (or find the identical version there)."""
        import composer

        def on_module(event: composer.ProgressEvent) -> None:
            context.report(event.module, event.done, event.total)

        with scratch_directory(context.settings.tmp_dir, f"job-{job.id}-") as work:
            root = work / "inputs"
            for ref, files in _input_files(context, job).items():
                materialise(context.store, files, root / ref)
            out = work / "out"
            result = composer.compose(_recipe_only(job.spec), out, root=root, progress=on_module)
            entries = _ingest(context, out)
            digest = manifest_digest(entries)
            existing = _existing_version(context, job.target, digest)
            if existing is not None:
                return JobOutcome(existing, digest, "an identical version existed; no new version")
            namespace, name = job.target.split("/", 1)
            request = PublishRequest(
                files=[FileEntry(path=e.path, sha256=e.sha256, size=e.size) for e in entries],
                message=job.message or f"composed by job {job.id}",
                alias=job.alias,
                kind="model" if self.output_kind(job.spec) == "model" else "adapter",
            )
            with Session(context.engine) as session:
                published = publish_version(
                    session,
                    context.store,
                    context.settings,
                    Caller(actor=job.created_by, request_id=job.request_id),
                    namespace,
                    name,
                    request,
                    lineage=_lineage(job, result),
                    uploaded={entry.sha256 for entry in entries},  # the job made them
                )
            return JobOutcome(
                published.version, published.digest.removeprefix("sha256:"), "published"
            )

    def after_success(self, context: JobContext, job: Job, outcome: JobOutcome) -> list[str]:
        """Submit the recipe's evaluations of the version the job published (or found)."""
        planned = job.spec.get(EVALUATE) or []
        if not planned:
            return []
        from registry.services.evaluations import recipe_evaluation_jobs
        from registry.services.job_kinds.workspace import pinned_version

        queue = context.queue or _DeliveredLater()
        caller = Caller(actor=job.created_by, request_id=job.request_id)
        with Session(context.engine) as session:
            _repository, version = pinned_version(session, f"{job.target}@sha256:{outcome.digest}")
            jobs = recipe_evaluation_jobs(
                session, caller, queue, job.target, version, planned, job.message
            )
        return [
            f"evaluation job {item.id} submitted: {', '.join(item.recipe['tasks'])}"
            for item in jobs
        ]


class _DeliveredLater:
    """A queue for a runner that has none: the job waits as a queued row, which the next
    delivery of queued jobs (a process's start, the sweep) hands to a worker."""

    def enqueue(self, job_id: str, queue: str) -> None:
        return None

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


def _input_files(context: JobContext, job: Job) -> dict[str, list[tuple[str, str]]]:
    by_ref: dict[str, list[tuple[str, str]]] = {}
    with Session(context.engine) as session:
        for item in job.inputs:
            namespace, name = item["repository"].split("/", 1)
            hex_digest = item["digest"].removeprefix("sha256:")
            version = session.exec(
                select(Version)
                .join(Repository, col(Repository.id) == col(Version.repository_id))
                .where(
                    Repository.namespace == namespace,
                    Repository.name == name,
                    Version.digest == hex_digest,
                )
            ).one()
            rows = session.exec(
                select(VersionFile).where(VersionFile.version_id == version.id)
            ).all()
            ref = f"{item['repository']}@sha256:{hex_digest}"
            by_ref[ref] = [(row.path, row.sha256) for row in rows]
    return by_ref


def _ingest(context: JobContext, out: Path) -> list[ManifestEntry]:
    entries = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        relative = path.relative_to(out).as_posix()
        sha256, size = store_file(context.store, path)
        entries.append(ManifestEntry(path=relative, sha256=sha256, size=size))
    return entries


def _existing_version(context: JobContext, target: str, digest: str) -> int | None:
    namespace, name = target.split("/", 1)
    with Session(context.engine) as session:
        number: int | None = session.exec(
            select(Version.number)
            .join(Repository, col(Repository.id) == col(Version.repository_id))
            .where(
                Repository.namespace == namespace,
                Repository.name == name,
                Version.digest == digest,
            )
        ).first()
    return number


def _lineage(job: Job, result: composer.ComposeResult) -> dict[str, Any]:
    import composer

    recipe = composer.parse_recipe(_recipe_only(job.spec))
    return {
        "job": job.id,
        "method": recipe.method,
        "seed": recipe.parameters.seed,
        "output_type": recipe.output.type,
        "parents": [
            {
                "repository": item["repository"],
                "version": item["version"],
                "digest": item["digest"],
                "weight": item.get("weight"),
                "role": item.get("role", "input"),
            }
            for item in job.inputs
        ],
        "recipe": _recipe_only(job.spec),
        "device": result.device,
        "max_error": result.max_error,
        "libraries": library_versions(_LIBRARIES),
    }
