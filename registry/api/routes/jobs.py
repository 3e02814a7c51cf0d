from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from registry.api.access import AccessCheckDep, VisibilityDep
from registry.api.deps import CallerDep, SessionDep
from registry.schemas.compose import JobKind, JobList, JobOut, JobState
from registry.services import jobs

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("")
def list_jobs(
    session: SessionDep,
    visible: VisibilityDep,
    state: JobState | None = None,
    repository: str | None = None,
    kind: JobKind | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobList:
    return jobs.list_jobs(
        session,
        state=state,
        repository=repository,
        kind=kind,
        limit=limit,
        offset=offset,
        visible=visible,
    )


@router.get("/{job_id}")
def get_job(session: SessionDep, visible: VisibilityDep, job_id: str) -> JobOut:
    return jobs.get_job(session, job_id, visible)


@router.post("/{job_id}/cancel")
def cancel_job(
    session: SessionDep,
    caller: CallerDep,
    check_access: AccessCheckDep,
    visible: VisibilityDep,
    job_id: str,
) -> JobOut:
    return jobs.cancel_job(session, caller, job_id, check_access, visible)
