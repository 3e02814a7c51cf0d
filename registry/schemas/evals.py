"""API schemas of evaluation results, comparisons and their history across versions."""

from __future__ import annotations

from datetime import datetime

from registry.schemas.base import Schema


class EvalResultOut(Schema):
    id: int
    document_id: int
    version: int
    digest: str
    task: str
    metric: str
    filter: str
    value: float
    stderr: float | None
    n_shot: int | None
    higher_is_better: bool | None
    dataset: str | None
    split: str | None
    revision: str | None
    notes: str | None
    source: str
    created_by: str
    created_at: datetime


class EvalRecorded(Schema):
    """What ``POST .../evals`` stored: one document and its results."""

    repository: str
    version: int
    digest: str
    document_id: int
    source: str
    results: list[EvalResultOut]
    skipped: list[str]


class EvalResultList(Schema):
    """Every result of a version, oldest first (several per metric when re-measured)."""

    repository: str
    version: int
    digest: str
    items: list[EvalResultOut]


class EvalPoint(Schema):
    version: int
    value: float
    stderr: float | None
    result_id: int


class EvalSeries(Schema):
    task: str
    metric: str
    filter: str
    higher_is_better: bool | None
    points: list[EvalPoint]
    """The newest result of each version that has one, by version number."""


class EvalVersionMarker(Schema):
    version: int
    digest: str
    aliases: list[str]


class EvalHistory(Schema):
    """A repository's metrics across its versions, with the aliases of each version."""

    repository: str
    versions: list[EvalVersionMarker]
    series: list[EvalSeries]


class EvalComparisonRow(Schema):
    task: str
    metric: str
    filter: str
    base: float | None
    base_stderr: float | None
    candidate: float | None
    candidate_stderr: float | None
    difference: float | None
    """``candidate - base``; ``None`` when either side has no result."""
    significant: bool | None
    """``|difference| > 1.96 * sqrt(se_base² + se_candidate²)``; ``None`` without both stderrs."""
    higher_is_better: bool | None
    improved: bool | None


class EvalComparison(Schema):
    repository: str
    base: int
    candidate: int
    rows: list[EvalComparisonRow]
