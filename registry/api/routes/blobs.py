from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from registry.api.access import VisibilityDep
from registry.api.deps import BlobStoreDep, SessionDep, SettingsDep
from registry.errors import InvalidInput
from registry.schemas.repos import BlobInfo
from registry.services import blobs
from registry.services.blob_visibility import visible_blob_size

router = APIRouter(prefix="/blobs/sha256", tags=["blobs"])


@router.head("/{sha256}", response_class=Response)
async def head_blob(
    session: SessionDep, store: BlobStoreDep, visibility: VisibilityDep, sha256: str
) -> Response:
    """Whether the blob is stored, for a blob that a version the caller may read references
    (``registry.services.blob_visibility``)."""
    size = await run_in_threadpool(visible_blob_size, session, store, visibility, sha256)
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
    request: Request, store: BlobStoreDep, settings: SettingsDep, sha256: str
) -> JSONResponse:
    """Upload a file's bytes under their sha256; the body is streamed, never held in memory."""
    info, created = await blobs.receive_blob(
        store, settings, sha256, request.stream(), content_length(request)
    )
    return JSONResponse(info.model_dump(), status_code=201 if created else 200)
