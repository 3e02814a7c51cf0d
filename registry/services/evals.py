"""Evaluation results of versions: record them (each an audit event), read, compare.

Results are bound to the version's digest and never change: a re-measured metric is a new
row, and the newest row of a ``(task, metric, filter)`` is the version's value for it
(gates, comparisons, the exported ``model-index``). ``record_results`` is the one entry
point for every source: the REST route, a pushed card's ``model-index`` and
``.eval_results`` files at publish time, and evaluation jobs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from sqlmodel import Session, col, select

from registry.db import begin_write
from registry.schemas.evals import (
    EvalComparison,
    EvalComparisonRow,
    EvalHistory,
    EvalPoint,
    EvalRecorded,
    EvalResultList,
    EvalResultOut,
    EvalSeries,
    EvalVersionMarker,
)
from registry.services.audit import Caller, record_event
from registry.services.names import repository_id
from registry.services.refs import resolve_ref
from registry.services.repositories import find_repository, lock_repository
from registry.tables import Alias, EvalDocument, EvalResult, Repository, Version, utcnow
from registry.validation.eval_results import (
    ParsedDocument,
    ParsedResult,
    model_index,
    parse_as,
    parse_document,
)

EVAL_ADD = "eval.add"
AUDITED_RESULTS = 200
"""Results listed in an ``eval.add`` event (all of them are rows of the stored document)."""
SIGNIFICANCE_Z = 1.96
"""Two-sided 95%: a difference is significant when it exceeds 1.96 standard errors of the
difference, ``sqrt(se1² + se2²)`` (the two measurements independent)."""


def result_out(row: EvalResult, version: int) -> EvalResultOut:
    assert row.id is not None
    return EvalResultOut(
        id=row.id,
        document_id=row.document_id,
        version=version,
        digest=f"sha256:{row.digest}",
        task=row.task,
        metric=row.metric,
        filter=row.filter,
        value=row.value,
        stderr=row.stderr,
        n_shot=row.n_shot,
        higher_is_better=row.higher_is_better,
        dataset=row.dataset,
        split=row.split,
        revision=row.revision,
        notes=row.notes,
        source=row.source,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def record_results(
    session: Session,
    caller: Caller,
    repository: Repository,
    version: Version,
    document: Any,
    *,
    source: str | None = None,
    path: str | None = None,
    parsed: ParsedDocument | None = None,
) -> EvalRecorded:
    """Store ``document`` and its results against ``version`` inside the caller's write
    transaction, with an ``eval.add`` audit event; the caller commits.

    ``parsed`` is the document already read (publish reads cards before its transaction);
    otherwise it is parsed here, its format recognised by shape unless ``source`` names it.
    A document Lorry cannot read raises ``InvalidEvalResults`` before anything is added.
    An evaluation job calls ``record_results(session, caller, repository, version,
    results_json, source="lm-eval")``.
    """
    if parsed is None:
        parsed = parse_document(document) if source is None else parse_as(document, source)
    source = source or parsed.source
    assert version.id is not None and version.repository_id == repository.id
    now = utcnow()
    stored = EvalDocument(
        version_id=version.id,
        digest=version.digest,
        source=source,
        path=path,
        document=document,
        created_by=caller.actor,
        created_at=now,
    )
    session.add(stored)
    session.flush()
    assert stored.id is not None
    rows = [_result_row(stored, result, caller, now) for result in parsed.results]
    session.add_all(rows)
    session.flush()
    repo_id = repository_id(repository.namespace, repository.name)
    record_event(
        session,
        caller,
        EVAL_ADD,
        repository=repo_id,
        target=f"{repo_id}@{version.number}",
        after={
            "version": version.number,
            "digest": f"sha256:{version.digest}",
            "document": stored.id,
            "source": source,
            "path": path,
            "count": len(rows),
            "results": [
                {
                    "id": r.id,
                    "task": r.task,
                    "metric": r.metric,
                    "filter": r.filter,
                    "value": r.value,
                }
                for r in rows[:AUDITED_RESULTS]
            ],
        },
    )
    return EvalRecorded(
        repository=repo_id,
        version=version.number,
        digest=f"sha256:{version.digest}",
        document_id=stored.id,
        source=source,
        results=[result_out(row, version.number) for row in rows],
        skipped=parsed.skipped,
    )


def _result_row(
    document: EvalDocument, result: ParsedResult, caller: Caller, now: Any
) -> EvalResult:
    assert document.id is not None
    return EvalResult(
        document_id=document.id,
        version_id=document.version_id,
        digest=document.digest,
        task=result.task,
        metric=result.metric,
        filter=result.filter,
        value=result.value,
        stderr=result.stderr,
        n_shot=result.n_shot,
        higher_is_better=result.higher_is_better,
        dataset=result.dataset,
        split=result.split,
        revision=result.revision,
        notes=result.notes,
        source=document.source,
        created_by=caller.actor,
        created_at=now,
    )


def add_results(
    session: Session, caller: Caller, namespace: str, name: str, ref: str, document: Any
) -> EvalRecorded:
    """``POST .../versions/{ref}/evals``: parse first (a bad document costs one parse and
    changes nothing), then one write transaction."""
    parsed = parse_document(document)
    begin_write(session)
    try:
        repository = lock_repository(session, namespace, name)
        version = resolve_ref(session, repository, ref)
        recorded = record_results(session, caller, repository, version, document, parsed=parsed)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return recorded


def _rows_of(session: Session, version_ids: Sequence[int]) -> list[EvalResult]:
    if not version_ids:
        return []
    return list(
        session.exec(
            select(EvalResult)
            .where(col(EvalResult.version_id).in_(version_ids))
            .order_by(col(EvalResult.id))
        ).all()
    )


def latest_by_metric(rows: Iterable[EvalResult]) -> dict[tuple[str, str, str], EvalResult]:
    """The newest row of each ``(task, metric, filter)`` (rows oldest first)."""
    latest: dict[tuple[str, str, str], EvalResult] = {}
    for row in rows:
        latest[(row.task, row.metric, row.filter)] = row
    return latest


def version_results(session: Session, namespace: str, name: str, ref: str) -> EvalResultList:
    repository = find_repository(session, namespace, name)
    version = resolve_ref(session, repository, ref)
    assert version.id is not None
    return EvalResultList(
        repository=repository_id(namespace, name),
        version=version.number,
        digest=f"sha256:{version.digest}",
        items=[result_out(row, version.number) for row in _rows_of(session, [version.id])],
    )


def repository_history(session: Session, namespace: str, name: str) -> EvalHistory:
    """Every metric across the versions that have results, and every version's aliases."""
    repository = find_repository(session, namespace, name)
    versions = session.exec(
        select(Version).where(Version.repository_id == repository.id).order_by(col(Version.number))
    ).all()
    numbers = {v.id: v.number for v in versions}
    aliases: dict[int, list[str]] = {}
    for alias in session.exec(
        select(Alias).where(Alias.repository_id == repository.id).order_by(col(Alias.name))
    ).all():
        aliases.setdefault(alias.version_id, []).append(alias.name)
    series: dict[tuple[str, str, str], EvalSeries] = {}
    rows = _rows_of(session, [v.id for v in versions if v.id is not None])
    by_version: dict[int, list[EvalResult]] = {}
    for row in rows:
        by_version.setdefault(row.version_id, []).append(row)
    for version_id in sorted(by_version, key=lambda v: numbers[v]):
        for key, row in latest_by_metric(by_version[version_id]).items():
            entry = series.setdefault(
                key,
                EvalSeries(
                    task=key[0],
                    metric=key[1],
                    filter=key[2],
                    higher_is_better=row.higher_is_better,
                    points=[],
                ),
            )
            assert row.id is not None
            entry.points.append(
                EvalPoint(
                    version=numbers[version_id],
                    value=row.value,
                    stderr=row.stderr,
                    result_id=row.id,
                )
            )
    return EvalHistory(
        repository=repository_id(namespace, name),
        versions=[
            EvalVersionMarker(
                version=v.number, digest=f"sha256:{v.digest}", aliases=aliases.get(v.id or 0, [])
            )
            for v in versions
        ],
        series=[series[key] for key in sorted(series)],
    )


def compare_rows(
    base: dict[tuple[str, str, str], EvalResult],
    candidate: dict[tuple[str, str, str], EvalResult],
) -> list[EvalComparisonRow]:
    rows = []
    for key in sorted(set(base) | set(candidate)):
        old, new = base.get(key), candidate.get(key)
        difference = new.value - old.value if old is not None and new is not None else None
        significant: bool | None = None
        if (
            difference is not None
            and old
            and new
            and old.stderr is not None
            and (new.stderr is not None)
        ):
            bound = SIGNIFICANCE_Z * math.sqrt(old.stderr**2 + new.stderr**2)
            significant = abs(difference) > bound
        either = new or old
        higher = either.higher_is_better if either is not None else None
        improved = None
        if difference is not None and difference != 0:
            improved = (difference > 0) == (higher is not False)
        rows.append(
            EvalComparisonRow(
                task=key[0],
                metric=key[1],
                filter=key[2],
                base=old.value if old else None,
                base_stderr=old.stderr if old else None,
                candidate=new.value if new else None,
                candidate_stderr=new.stderr if new else None,
                difference=difference,
                significant=significant,
                higher_is_better=higher,
                improved=improved,
            )
        )
    return rows


def compare_versions(
    session: Session, namespace: str, name: str, base_ref: str, candidate_ref: str
) -> EvalComparison:
    repository = find_repository(session, namespace, name)
    base = resolve_ref(session, repository, base_ref)
    candidate = resolve_ref(session, repository, candidate_ref)
    assert base.id is not None and candidate.id is not None
    return EvalComparison(
        repository=repository_id(namespace, name),
        base=base.number,
        candidate=candidate.number,
        rows=compare_rows(
            latest_by_metric(_rows_of(session, [base.id])),
            latest_by_metric(_rows_of(session, [candidate.id])),
        ),
    )


def card_with_results(
    session: Session, card: dict[str, Any], repo_id: str, version_id: int
) -> dict[str, Any]:
    """The version's card front matter with its recorded results as ``model-index`` (what Hub
    clients read as ``card_data.eval_results``); the card itself when it has none."""
    latest = latest_by_metric(_rows_of(session, [version_id]))
    if not latest:
        return card
    results = [
        ParsedResult(
            task=row.task,
            metric=row.metric,
            value=row.value,
            filter=row.filter,
            stderr=row.stderr,
            n_shot=row.n_shot,
            higher_is_better=row.higher_is_better,
            dataset=row.dataset,
            split=row.split,
            revision=row.revision,
            notes=row.notes,
        )
        for row in latest.values()
    ]
    return {**card, "model-index": model_index(repo_id.split("/", 1)[1], results)}
