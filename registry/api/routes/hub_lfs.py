"""The Git LFS batch API and its signed upload URLs (``registry.services.lfs``).

``POST /{ns}/{name}.git/info/lfs/objects/batch`` and ``.../verify`` take the caller's
token (``write`` on the namespace); the upload routes under ``/api/lfs/`` take no
token but a signature over the upload they allow (``registry.services.upload_urls``),
because huggingface_hub sends them none, as to S3.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlmodel import Session

from registry.api.deps import BlobStoreDep, PrincipalDep, SessionDep, SettingsDep
from registry.api.routes.blobs import content_length
from registry.api.routes.hub import HubRoute
from registry.schemas.lfs import (
    LFS_MEDIA_TYPE,
    LfsBatchRequest,
    LfsCompletion,
    LfsObject,
)
from registry.services import lfs, lfs_uploads
from registry.services.blob_claims import record_uploads, sees_everything
from registry.services.names import check_repository_name
from registry.services.upload_urls import UploadGrant, check_grant, upload_url_key

UPLOADS_PREFIX = "/api/lfs/uploads/"
"""Upload bodies stream (exempt from the JSON body limit, like blob uploads)."""

router = APIRouter(tags=["hugging face hub"], route_class=HubRoute)


def _key(request: Request) -> bytes:
    key: bytes | None = getattr(request.app.state, "upload_url_key", None)
    if key is None:
        key = upload_url_key(request.app.state.settings)
        request.app.state.upload_url_key = key
    return key


KeyDep = Annotated[bytes, Depends(_key)]


def _grant(
    key: KeyDep,
    upload_id: str,
    oid: Annotated[str, Query(max_length=64)],
    size: Annotated[int, Query(ge=0)],
    part_size: Annotated[int, Query(ge=0)],
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(max_length=64)],
    namespace: Annotated[str, Query(max_length=96)] = "",
) -> UploadGrant:
    grant = UploadGrant(upload_id, oid, size, part_size, expires, namespace)
    check_grant(key, grant, signature)
    return grant


GrantDep = Annotated[UploadGrant, Depends(_grant)]


def _lfs_json(body: object) -> JSONResponse:
    return JSONResponse(body, media_type=LFS_MEDIA_TYPE)


@router.post("/{namespace}/{name}.git/info/lfs/objects/batch")
async def lfs_batch(
    request: Request,
    session: SessionDep,
    store: BlobStoreDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    key: KeyDep,
    namespace: str,
    name: str,
    body: LfsBatchRequest,
) -> JSONResponse:
    """Upload instructions for Git LFS objects (basic and multipart transfers)."""
    check_repository_name(namespace, name)
    base = str(request.base_url).rstrip("/")

    def url_for(grant: UploadGrant, path: str) -> str:
        return f"{base}/api/lfs/{path}?{grant.query(key)}"

    verify_href = f"{base}/{namespace}/{name}.git/info/lfs/objects/verify"
    await anyio.to_thread.run_sync(lfs_uploads.sweep_stale_spools, settings)
    answer = await anyio.to_thread.run_sync(
        lfs.batch,
        session,
        store,
        settings,
        namespace,
        sees_everything(principal),
        body,
        url_for,
        verify_href,
    )
    return _lfs_json(answer.model_dump(exclude_none=True))


@router.post("/{namespace}/{name}.git/info/lfs/objects/verify")
async def lfs_verify(
    store: BlobStoreDep, namespace: str, name: str, body: LfsObject
) -> JSONResponse:
    """The object was stored, with this size."""
    check_repository_name(namespace, name)
    await anyio.to_thread.run_sync(lfs.verify, store, body.oid, body.size)
    return _lfs_json({"message": "ok"})


_BINARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.put("/api/lfs/uploads/{upload_id}", openapi_extra=_BINARY_BODY)
async def lfs_upload(
    request: Request,
    session: SessionDep,
    store: BlobStoreDep,
    settings: SettingsDep,
    grant: GrantDep,
) -> JSONResponse:
    """Basic transfer: the whole file, streamed and stored only if it hashes to the oid;
    the grant's namespace then holds it (``registry.services.blob_claims``)."""
    info, _created = await lfs_uploads.receive_basic(
        store, settings, grant, request.stream(), content_length(request)
    )
    await anyio.to_thread.run_sync(_record, session, grant)
    # One status whether the store had the bytes or not: it says nothing of other namespaces.
    return JSONResponse(info.model_dump(), status_code=200)


def _record(session: Session, grant: UploadGrant) -> None:
    """The grant's namespace holds the blob whose bytes were just received and hashed."""
    if grant.namespace:
        record_uploads(session, [grant.namespace], grant.oid)


@router.put("/api/lfs/uploads/{upload_id}/parts/{number}", openapi_extra=_BINARY_BODY)
async def lfs_upload_part(
    request: Request, settings: SettingsDep, grant: GrantDep, number: int
) -> Response:
    """Multipart transfer: one part; answers its ETag, which the completion quotes."""
    etag = await lfs_uploads.receive_part(
        settings, grant, number, request.stream(), content_length(request)
    )
    return Response(status_code=200, headers={"ETag": etag})


@router.post("/api/lfs/complete/{upload_id}")
async def lfs_complete(
    session: SessionDep,
    store: BlobStoreDep,
    settings: SettingsDep,
    grant: GrantDep,
    body: LfsCompletion,
) -> JSONResponse:
    """Multipart transfer: every part is in; the file is hashed and stored."""
    info = await lfs_uploads.complete(store, settings, grant, body)
    await anyio.to_thread.run_sync(_record, session, grant)
    return _lfs_json(info.model_dump())
