from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from registry.api.access import AccessCheckDep
from registry.api.deps import BlobStoreDep, CallerDep, SessionDep, SettingsDep
from registry.schemas.compose import CompositionRequest, JobOut
from registry.services import compositions
from registry.services.job_queue import JobQueue

router = APIRouter(prefix="/compositions", tags=["compositions"])


def get_job_queue(request: Request) -> JobQueue:
    queue: JobQueue = request.app.state.job_queue
    return queue


JobQueueDep = Annotated[JobQueue, Depends(get_job_queue)]


@router.post(
    "",
    status_code=202,
    responses={200: {"model": JobOut, "description": "an identical earlier job answered"}},
)
def submit_composition(
    session: SessionDep,
    caller: CallerDep,
    queue: JobQueueDep,
    body: CompositionRequest,
    response: Response,
    check_access: AccessCheckDep,
    settings: SettingsDep,
    store: BlobStoreDep,
) -> JobOut:
    job = compositions.submit_composition(
        session, caller, queue, body, check_access, settings=settings, store=store
    )
    if job.reused:
        response.status_code = 200
    return job
