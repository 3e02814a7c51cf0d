"""API schemas of compositions, jobs and lineage (request and response bodies)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from registry.schemas.base import Schema
from registry.schemas.export import ExportOut, JobExport

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobKind = Literal["compose", "export", "eval"]
JOB_STATES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED_STATES: tuple[str, ...] = ("succeeded", "failed", "cancelled")


class CompositionRequest(Schema):
    recipe: dict[str, Any] = Field(
        description="a composer recipe whose inputs (and merged output.base) are registry "
        "references such as acme/sql-gen@production"
    )
    target: str = Field(description="the repository that receives the result: namespace/name")
    alias: str | None = Field(default=None, description="an alias to point at the result")
    message: str | None = Field(default=None, max_length=10_000)


class JobInput(Schema):
    ref: str
    repository: str
    version: int
    digest: str
    weight: float | None = None
    role: Literal["input", "base", "tasks"] = "input"


class JobProgress(Schema):
    done: int
    total: int
    module: str | None


class JobLogEntry(Schema):
    at: datetime
    message: str


class JobResult(Schema):
    repository: str
    version: int
    digest: str


class JobOut(Schema):
    id: str
    kind: JobKind = Field(
        default="compose",
        description="compose: publishes a version; export: adds a file to one; eval: records "
        "evaluation results on one",
    )
    state: JobState
    target: str
    output_kind: str
    queue: str
    recipe: dict[str, Any]
    inputs: list[JobInput]
    alias: str | None
    message: str | None
    progress: JobProgress
    log: list[JobLogEntry]
    error: dict[str, str] | None
    result: JobResult | None
    attempts: int
    cancel_requested: bool
    worker: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    reused: bool = Field(
        default=False, description="true when an identical earlier submission answered"
    )
    export: JobExport | None = Field(default=None, description="what an export job writes")


class JobList(Schema):
    items: list[JobOut]
    total: int


class LineageParent(Schema):
    repository: str
    version: int
    digest: str
    weight: float | None
    role: str
    lineage: LineageNode | None = None


class LineageNode(Schema):
    repository: str
    version: int
    digest: str
    kind: str
    method: str | None
    job: str | None
    parents: list[LineageParent]


class DerivedVersion(Schema):
    repository: str
    version: int
    digest: str
    aliases: list[str]
    via: str = Field(description="the parent this version was composed from directly")
    depth: int = Field(description="1: composed directly from the queried version")


class DerivedList(Schema):
    source: JobResult
    items: list[DerivedVersion]
    exports: list[ExportOut] = Field(
        default_factory=list, description="files exported from the queried version (GGUF)"
    )


LineageParent.model_rebuild()
