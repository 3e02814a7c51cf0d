from __future__ import annotations

from fastapi import APIRouter, Response

from registry.api.access import AccessCheckDep
from registry.api.deps import BlobStoreDep, CallerDep, SessionDep, SettingsDep
from registry.api.routes.compositions import JobQueueDep
from registry.schemas.compose import JobOut
from registry.schemas.eval_jobs import EvalRunRequest
from registry.services import evaluations

router = APIRouter(prefix="/repos/{namespace}/{name}/versions", tags=["evaluations"])


@router.post(
    "/{ref}/evaluations",
    status_code=202,
    responses={200: {"model": JobOut, "description": "an identical earlier job answered"}},
)
def submit_evaluation(
    session: SessionDep,
    caller: CallerDep,
    queue: JobQueueDep,
    store: BlobStoreDep,
    settings: SettingsDep,
    check_access: AccessCheckDep,
    namespace: str,
    name: str,
    ref: str,
    body: EvalRunRequest,
    response: Response,
) -> JobOut:
    """Run lm-evaluation-harness on the adapter version (a job) and record its results
    against it; with `promote`, then move that alias, which its gates judge."""
    job = evaluations.submit_evaluation(
        session, caller, queue, store, namespace, name, ref, body, check_access, settings=settings
    )
    if job.reused:
        response.status_code = 200
    return job
