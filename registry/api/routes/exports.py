from __future__ import annotations

from fastapi import APIRouter, Response

from registry.api.access import AccessCheckDep, VisibilityDep
from registry.api.deps import BlobStoreDep, CallerDep, SessionDep, SettingsDep
from registry.api.routes.compositions import JobQueueDep
from registry.schemas.compose import JobOut
from registry.schemas.export import ExportList, ExportOut, ExportRequest
from registry.services import export_listing, exports

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
    store: BlobStoreDep,
    settings: SettingsDep,
    namespace: str,
    name: str,
    ref: str,
    body: ExportRequest,
    response: Response,
) -> JobOut:
    """Build a derived file of the version (GGUF) as a job; download it by its path
    (`export.path`) once the job succeeded, as any file of the version. With
    `merge_into`, the adapter is merged into that base model first (one model file)."""
    job = exports.submit_export(
        session,
        caller,
        queue,
        namespace,
        name,
        ref,
        body,
        check_access,
        store=store,
        settings=settings,
    )
    if job.state == "succeeded":
        response.status_code = 200
    return job


@router.get("/{ref}/exports")
def list_exports(
    session: SessionDep, visible: VisibilityDep, namespace: str, name: str, ref: str
) -> ExportList:
    """The version's exports, with their lineage; each downloads as a file of the version.
    A model version also lists the merged exports of adapters merged into it."""
    return export_listing.list_exports(session, namespace, name, ref, visible)


@router.get("/{ref}/exports/{path:path}")
def get_export(session: SessionDep, namespace: str, name: str, ref: str, path: str) -> ExportOut:
    """One export of the version, by path, with its lineage (for a merged export: the
    adapter and base versions with their digests, the outtype and the tool versions)."""
    return export_listing.get_export(session, namespace, name, ref, path)
