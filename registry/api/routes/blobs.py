from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from registry.api.access import VisibilityDep
from registry.api.auth import authorize_namespace
from registry.api.deps import BlobStoreDep, PrincipalDep, SessionDep, SettingsDep
from registry.errors import InvalidInput
from registry.schemas.repos import BlobInfo
from registry.services import blobs
from registry.services.blob_claims import record_uploads, token_namespaces
from registry.services.blob_visibility import visible_blob_size
from registry.services.names import check_namespace

router = APIRouter(prefix="/blobs/sha256", tags=["blobs"])


@router.head("/{sha256}", response_class=Response)
async def head_blob(
    session: SessionDep,
    store: BlobStoreDep,
    visibility: VisibilityDep,
    sha256: str,
    namespace: Annotated[str | None, Query(max_length=96)] = None,
) -> Response:
    """Whether the blob is stored, for a blob that a version the caller may read references
    (``registry.services.blob_visibility``); with ``namespace``, whether that namespace
    holds it (a version there may name it without uploading it)."""
    size = await run_in_threadpool(visible_blob_size, session, store, visibility, sha256, namespace)
    return Response(status_code=200, headers={"Content-Length": str(size)})


def content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise InvalidInput(f"Content-Length {value!r} is not a number of bytes")
    return int(value)


@router.put(
    "/{sha256}",
    status_code=201,
    response_model=BlobInfo,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_blob(
    request: Request,
    session: SessionDep,
    store: BlobStoreDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    sha256: str,
    namespace: Annotated[str | None, Query(max_length=96)] = None,
) -> JSONResponse:
    """Upload a file's bytes under their sha256 for ``namespace`` (which then holds the blob:
    ``registry.services.blob_claims``); the body is streamed, never held in memory. The
    answer is 201 whether the store had these bytes or not (it says nothing of other
    namespaces). Without ``namespace`` (older clients) the upload counts for each namespace
    that the token names literally."""
    if namespace is not None:
        check_namespace(namespace)
        authorize_namespace(request, namespace)
    info, _created = await blobs.receive_blob(
        store, settings, sha256, request.stream(), content_length(request)
    )
    held_by = [namespace] if namespace is not None else token_namespaces(principal.namespaces)
    await run_in_threadpool(record_uploads, session, held_by, sha256)
    return JSONResponse(info.model_dump(), status_code=201)
