from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from registry.api.access import AccessCheckDep
from registry.api.deps import CallerDep, PrincipalDep, SessionDep
from registry.compose_schemas import JobList, JobOut, JobState
from registry.services import jobs
from registry.services.principals import visible_namespaces

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("")
def list_jobs(
    session: SessionDep,
    principal: PrincipalDep,
    state: JobState | None = None,
    repository: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobList:
    return jobs.list_jobs(
        session,
        state=state,
        repository=repository,
        limit=limit,
        offset=offset,
        namespaces=visible_namespaces(principal),
    )


@router.get("/{job_id}")
def get_job(session: SessionDep, job_id: str) -> JobOut:
    return jobs.get_job(session, job_id)


@router.post("/{job_id}/cancel")
def cancel_job(
    session: SessionDep, caller: CallerDep, check_access: AccessCheckDep, job_id: str
) -> JobOut:
    return jobs.cancel_job(session, caller, job_id, check_access)
