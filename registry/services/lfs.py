"""The Git LFS batch API of the Hub write path: how large files reach the blob store.

Which client is told to come here is ``registry.services.upload_modes``'s decision.
Upload URLs point at this server on both blob backends (signed, short-lived:
``registry.services.upload_urls``): the bytes are spooled and hashed on their way
in by the same pipeline as ``PUT /api/v1/blobs/sha256/<hex>`` and enter the store
only when they hash to the oid. (Presigned S3 URLs would let bytes bypass that
check until a second full read of the object.)
"""

from __future__ import annotations

from collections.abc import Callable
from math import ceil

from sqlmodel import Session

from registry.config import Settings
from registry.errors import BlobNotFound, DigestMismatch, InvalidInput
from registry.schemas.lfs import (
    LfsAction,
    LfsBatchRequest,
    LfsBatchResponse,
    LfsObject,
    LfsObjectAnswer,
    LfsObjectError,
)
from registry.services.blob_claims import held
from registry.services.blobs import check_sha256
from registry.services.upload_modes import LFS_ORIGIN
from registry.services.upload_urls import UploadGrant, new_grant
from registry.storage.base import BlobStore

UrlFor = Callable[[UploadGrant, str], str]
"""Builds the absolute, signed URL of a grant's upload route from its path under
``/api/lfs/`` (``uploads/<id>``, ``uploads/<id>/parts/3``, ``complete/<id>``)."""


def xet_unavailable_message() -> str:
    return (
        "Xet storage is off on this server (LORRY_HUB_XET=false): large files upload "
        "through the Git LFS batch API, which "
        "huggingface_hub uses only with Xet turned off. Set HF_HUB_DISABLE_XET=1 together "
        f"with HF_HUB_USER_AGENT_ORIGIN={LFS_ORIGIN}, or unset HF_HUB_USER_AGENT_ORIGIN to "
        "upload every file inline"
    )


def batch(
    session: Session,
    store: BlobStore,
    settings: Settings,
    namespace: str,
    everything: bool,
    request: LfsBatchRequest,
    url_for: UrlFor,
    verify_href: str,
) -> LfsBatchResponse:
    """Upload instructions for each object: nothing for a blob that ``namespace`` holds
    (``registry.services.blob_claims``) and that is stored, else a multipart or basic upload
    to signed URLs (for ``namespace``) and a ``verify`` call. A blob stored for another
    namespace only is uploaded again: the answer says nothing of other namespaces, and the
    store keeps one copy. ``everything``: the caller reads every namespace, so any stored
    blob counts (``registry.services.blob_claims``)."""
    if request.operation != "upload":
        raise InvalidInput(
            f"LFS operation {request.operation!r} is not served; download files through "
            "/<repo>/resolve/<revision>/<path> (what huggingface_hub does)"
        )
    if request.hash_algo != "sha256":
        raise InvalidInput(f"LFS hash_algo {request.hash_algo!r} is not supported; use sha256")
    if "basic" not in request.transfers and "multipart" not in request.transfers:
        raise InvalidInput(
            f"none of the LFS transfers {request.transfers} is served; offer basic or multipart"
        )
    holding: set[str] | None = None
    if not everything:
        holding = held(session, namespace, [item.oid for item in request.objects])
        session.rollback()
    answers = [
        _answer(store, settings, request, item, url_for, verify_href, namespace, holding)
        for item in request.objects
    ]
    multipart = any(
        answer.actions and (answer.actions["upload"].header or {}).get("chunk_size")
        for answer in answers
    )
    return LfsBatchResponse(transfer="multipart" if multipart else "basic", objects=answers)


def _answer(
    store: BlobStore,
    settings: Settings,
    request: LfsBatchRequest,
    item: LfsObject,
    url_for: UrlFor,
    verify_href: str,
    namespace: str,
    holding: set[str] | None,
) -> LfsObjectAnswer:
    error = _object_error(item, settings)
    if error is not None:
        return LfsObjectAnswer(oid=item.oid, size=item.size, error=error)
    if (
        (holding is None or item.oid in holding)
        and store.exists(item.oid)
        and store.size(item.oid) == item.size
    ):
        return LfsObjectAnswer(oid=item.oid, size=item.size)
    ttl = settings.upload_url_ttl_s
    verify = LfsAction(href=verify_href, expires_in=ttl)
    part_size = settings.lfs_part_bytes
    if "multipart" in request.transfers and item.size > part_size:
        grant = new_grant(item.oid, item.size, part_size, ttl, namespace)
        header = {"chunk_size": str(part_size)}
        for number in range(1, ceil(item.size / part_size) + 1):
            header[str(number)] = url_for(grant, f"uploads/{grant.upload_id}/parts/{number}")
        complete = url_for(grant, f"complete/{grant.upload_id}")
        upload = LfsAction(href=complete, header=header, expires_in=ttl)
    else:
        grant = new_grant(item.oid, item.size, 0, ttl, namespace)
        upload = LfsAction(href=url_for(grant, f"uploads/{grant.upload_id}"), expires_in=ttl)
    return LfsObjectAnswer(
        oid=item.oid, size=item.size, actions={"upload": upload, "verify": verify}
    )


def _object_error(item: LfsObject, settings: Settings) -> LfsObjectError | None:
    try:
        check_sha256(item.oid)
    except InvalidInput as exc:
        return LfsObjectError(code=422, message=exc.message)
    if item.size > settings.max_file_bytes:
        return LfsObjectError(
            code=422,
            message=f"the file of {item.size} bytes is larger than the server's limit of "
            f"{settings.max_file_bytes} bytes per file (LORRY_MAX_FILE_BYTES)",
        )
    return None


def verify(store: BlobStore, oid: str, size: int) -> None:
    """The LFS ``verify`` call: the object is stored, with this size."""
    check_sha256(oid)
    try:
        stored = store.size(oid)
    except BlobNotFound:
        raise BlobNotFound(
            f"object sha256:{oid} was not received; upload it again (its upload URL may "
            "have expired or the bytes did not match the oid)"
        ) from None
    if stored != size:
        raise DigestMismatch(
            f"object sha256:{oid} is stored with {stored} bytes, not the {size} bytes "
            "this verify call names"
        )
