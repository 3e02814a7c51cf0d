"""The Git LFS batch API of the Hub write path: how large files reach the blob store.

Which path a huggingface_hub client takes (read from huggingface_hub 2.4's
``_commit_api.py``, ``lfs.py`` and ``_upload_pipeline.py``):

- The ``preupload`` answer decides per file: ``"regular"`` files travel base64
  inside the NDJSON commit (read whole into the client's memory, commits batched);
  ``"lfs"`` files are uploaded first, then the commit names them by sha256.
- An ``"lfs"`` file goes through **Xet** whenever ``hf_xet`` is importable and
  ``HF_HUB_DISABLE_XET`` is unset, whatever the server says; Lorry has no Xet
  storage (CAS), so such a client must never be told ``"lfs"``. Otherwise (and for
  uploads from a file object) it goes through this batch API, with the transfers
  ``basic`` (one ``PUT``) and ``multipart`` (a ``PUT`` per part, then a completion
  ``POST``), and ``verify``.
- The ``preupload`` request of a client that uses Xet is byte-for-byte the one
  of a client that does not. So ``"lfs"`` is answered only to a client that
  announces it: ``HF_HUB_USER_AGENT_ORIGIN=lorry-lfs`` (huggingface_hub appends
  ``origin/lorry-lfs`` to its User-Agent) together with ``HF_HUB_DISABLE_XET=1``;
  every other client gets ``"regular"`` and works unchanged. A client that
  announces LFS but still has Xet enabled is stopped at its first Xet call
  (``xet-write-token``) with a message naming ``HF_HUB_DISABLE_XET=1``.

Upload URLs point at this server on both blob backends (signed, short-lived:
``registry.services.upload_urls``): the bytes are spooled and hashed on their way
in by the same pipeline as ``PUT /api/v1/blobs/sha256/<hex>`` and enter the store
only when they hash to the oid. (Presigned S3 URLs would let bytes bypass that
check until a second full read.)
"""

from __future__ import annotations

from collections.abc import Callable
from math import ceil
from typing import Literal

from registry.config import Settings
from registry.errors import BlobNotFound, DigestMismatch, InvalidInput
from registry.lfs_schemas import (
    LfsAction,
    LfsBatchRequest,
    LfsBatchResponse,
    LfsObject,
    LfsObjectAnswer,
    LfsObjectError,
)
from registry.services.blobs import check_sha256
from registry.services.upload_urls import UploadGrant, new_grant
from registry.storage.base import BlobStore

UploadMode = Literal["regular", "lfs"]
LFS_ORIGIN = "lorry-lfs"
"""The User-Agent token (``HF_HUB_USER_AGENT_ORIGIN=lorry-lfs``) by which a client says
that it uploads large files through the LFS batch API, not Xet."""

UrlFor = Callable[[UploadGrant, str], str]
"""Builds the absolute, signed URL of a grant's upload route from its path under
``/api/lfs/`` (``uploads/<id>``, ``uploads/<id>/parts/3``, ``complete/<id>``)."""


def client_uploads_lfs(user_agent: str | None) -> bool:
    if not user_agent:
        return False
    return any(part.strip() == f"origin/{LFS_ORIGIN}" for part in user_agent.split(";"))


def upload_mode(size: int, user_agent: str | None, settings: Settings) -> UploadMode:
    """What ``preupload`` answers for a file of ``size`` bytes (see the module docstring)."""
    if size >= settings.hub_lfs_min_bytes and client_uploads_lfs(user_agent):
        return "lfs"
    return "regular"


def xet_unavailable_message() -> str:
    return (
        "Lorry has no Xet storage: large files upload through the Git LFS batch API, which "
        "huggingface_hub uses only with Xet turned off. Set HF_HUB_DISABLE_XET=1 together "
        f"with HF_HUB_USER_AGENT_ORIGIN={LFS_ORIGIN}, or unset HF_HUB_USER_AGENT_ORIGIN to "
        "upload every file inline"
    )


def batch(
    store: BlobStore,
    settings: Settings,
    request: LfsBatchRequest,
    url_for: UrlFor,
    verify_href: str,
) -> LfsBatchResponse:
    """Upload instructions for each object: nothing for a blob already stored, else a
    multipart or basic upload to signed URLs and a ``verify`` call."""
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
    answers = [
        _answer(store, settings, request, item, url_for, verify_href) for item in request.objects
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
) -> LfsObjectAnswer:
    error = _object_error(item, settings)
    if error is not None:
        return LfsObjectAnswer(oid=item.oid, size=item.size, error=error)
    if store.exists(item.oid) and store.size(item.oid) == item.size:
        return LfsObjectAnswer(oid=item.oid, size=item.size)
    ttl = settings.upload_url_ttl_s
    verify = LfsAction(href=verify_href, expires_in=ttl)
    part_size = settings.lfs_part_bytes
    if "multipart" in request.transfers and item.size > part_size:
        grant = new_grant(item.oid, item.size, part_size, ttl)
        header = {"chunk_size": str(part_size)}
        for number in range(1, ceil(item.size / part_size) + 1):
            header[str(number)] = url_for(grant, f"uploads/{grant.upload_id}/parts/{number}")
        complete = url_for(grant, f"complete/{grant.upload_id}")
        upload = LfsAction(href=complete, header=header, expires_in=ttl)
    else:
        grant = new_grant(item.oid, item.size, 0, ttl)
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
