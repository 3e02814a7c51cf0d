from __future__ import annotations

from fastapi import APIRouter, Response

from registry.api.access import AccessCheckDep
from registry.api.deps import CallerDep, SessionDep
from registry.api.routes.compositions import JobQueueDep
from registry.schemas.compose import JobOut
from registry.schemas.export import ExportList, ExportRequest
from registry.services import exports

router = APIRouter(prefix="/repos/{namespace}/{name}/versions", tags=["exports"])


@router.post(
    "/{ref}/exports",
    status_code=202,
    responses={
        200: {"model": JobOut, "description": "the export exists: the job that built it"},
        202: {"description": "a job builds it (new, or an identical one already waiting)"},
    },
)
def submit_export(
    session: SessionDep,
    caller: CallerDep,
    queue: JobQueueDep,
    check_access: AccessCheckDep,
    namespace: str,
    name: str,
    ref: str,
    body: ExportRequest,
    response: Response,
) -> JobOut:
    """Build a derived file of the version (GGUF) as a job; download it by its path
    (`export.path`) once the job succeeded, as any file of the version."""
    job = exports.submit_export(session, caller, queue, namespace, name, ref, body, check_access)
    if job.state == "succeeded":
        response.status_code = 200
    return job


@router.get("/{ref}/exports")
def list_exports(session: SessionDep, namespace: str, name: str, ref: str) -> ExportList:
    """The version's exports, with their lineage; each downloads as a file of the version."""
    return exports.list_exports(session, namespace, name, ref)
