from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from registry.api.deps import CallerDep, SessionDep
from registry.schemas.evals import EvalComparison, EvalHistory, EvalRecorded, EvalResultList
from registry.services import evals

router = APIRouter(prefix="/repos/{namespace}/{name}", tags=["evaluations"])

EvalDocumentBody = Annotated[
    dict[str, Any] | list[Any],
    Body(
        description="lm-evaluation-harness results JSON as written, a plain "
        '`{"task": {"metric": value}}` document, a `model-index` or `.eval_results` entries'
    ),
]


@router.post("/versions/{ref}/evals", status_code=201)
def add_results(
    session: SessionDep,
    caller: CallerDep,
    namespace: str,
    name: str,
    ref: str,
    document: EvalDocumentBody,
) -> EvalRecorded:
    return evals.add_results(session, caller, namespace, name, ref, document)


@router.get("/versions/{ref}/evals")
def version_results(session: SessionDep, namespace: str, name: str, ref: str) -> EvalResultList:
    return evals.version_results(session, namespace, name, ref)


@router.get("/evals")
def repository_history(session: SessionDep, namespace: str, name: str) -> EvalHistory:
    return evals.repository_history(session, namespace, name)


@router.get("/evals/compare")
def compare_versions(
    session: SessionDep,
    namespace: str,
    name: str,
    base: Annotated[str, Query(max_length=200, description="the reference version (a ref)")],
    candidate: Annotated[str, Query(max_length=200, description="the version to judge")],
) -> EvalComparison:
    return evals.compare_versions(session, namespace, name, base, candidate)
