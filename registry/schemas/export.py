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
        description="f32, f16, bf16 or q8_0; default f32 for adapters, f16 for models; models "
        "and merges also q4_k_m, q4_k_s, q5_k_m, q6_k, q4_0",
    )
    base: str | None = Field(
        default=None,
        description="adapters: the base model as NAMESPACE/NAME[@REF] (its config.json names "
        "the tensors); default: the adapter's base_model_name_or_path when that names a "
        "repository of this registry",
    )
    merge_into: str | None = Field(
        default=None,
        description="adapters: merge the adapter into this base model (NAMESPACE/NAME[@REF], a "
        "model repository) and export one model file; outtype then takes the quantization "
        "mixes too (q4_k_m, q4_k_s, q5_k_m, q6_k, q4_0; default f16); leave base out",
    )


class JobExport(Schema):
    """What an export job writes: its path is known at submission, sha256 and size once built."""

    format: str
    outtype: str
    path: str
    base: str | None = Field(description="the base model's pinned reference (adapters)")
    merge_into: str | None = Field(
        default=None, description="a merged export: the pinned base model merged into"
    )
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
    merged_into: ExportSource | None = Field(
        default=None,
        description="a merged export: the base model version the adapter was merged into",
    )
    lineage: dict[str, Any] = Field(
        description="exported_from (repository, version, digest), base, kind, architecture, "
        "tensors and the library versions that wrote it"
    )
    created_by: str
    created_at: datetime


class ExportList(Schema):
    source: ExportSource
    items: list[ExportOut]
    merged_into_this: list[ExportOut] = Field(
        default_factory=list,
        description="models: merged exports of adapters (of namespaces the caller may read) "
        "merged into this version; each is a file of its adapter's version",
    )
