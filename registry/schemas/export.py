"""API schemas of exports: derived files (GGUF) built from a version by a job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from registry.schemas.base import Schema


class ExportRequest(Schema):
    format: str = Field(description="the file format to build; the registry builds `gguf`")
    outtype: str | None = Field(
        default=None,
        description="f32, f16, bf16 or q8_0; default f32 for adapters, f16 for models",
    )
    base: str | None = Field(
        default=None,
        description="adapters: the base model as NAMESPACE/NAME[@REF] (its config.json names "
        "the tensors); default: the adapter's base_model_name_or_path when that names a "
        "repository of this registry",
    )


class JobExport(Schema):
    """What an export job writes: its path is known at submission, sha256 and size once built."""

    format: str
    outtype: str
    path: str
    base: str | None = Field(description="the base model's pinned reference (adapters)")
    sha256: str | None = None
    size: int | None = None


class ExportSource(Schema):
    repository: str
    version: int
    digest: str


class ExportOut(Schema):
    repository: str
    version: int
    path: str = Field(description="download it as any file of the version, by this path")
    format: str
    outtype: str
    sha256: str
    size: int
    job: str
    lineage: dict[str, Any] = Field(
        description="exported_from (repository, version, digest), base, kind, architecture, "
        "tensors and the library versions that wrote it"
    )
    created_by: str
    created_at: datetime


class ExportList(Schema):
    source: ExportSource
    items: list[ExportOut]
