"""The Xet storage routes that ``hf_xet`` uploads through (``registry.services.xet``).

``GET /api/models/{ns}/{name}/xet-write-token/{revision}`` takes the caller's token
(``write`` on the namespace); the CAS routes under ``/api/xet/{ns}/{name}/`` take the
short-lived Xet token it issues (hf_xet sends it, not the Hub token), which is valid for
that one repository.
"""

from __future__ import annotations

import logging
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from registry.api.auth import bearer_token
from registry.api.deps import BlobStoreDep, SessionDep, SettingsDep
from registry.api.routes.hub import HubRoute
from registry.api.routes.hub_lfs import KeyDep
from registry.errors import LorryError, NotFound, XetUnavailable
from registry.services import lfs, xet, xet_xorbs
from registry.services.hub import find_hub_repository
from registry.services.names import check_repository_name
from registry.storage.xorbs import open_xorb_store

logger = logging.getLogger(__name__)

router = APIRouter(tags=["hugging face hub"], route_class=HubRoute)


@router.get("/api/models/{namespace}/{name}/xet-write-token/{revision:path}")
async def xet_write_token(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    store: BlobStoreDep,
    key: KeyDep,
    namespace: str,
    name: str,
    revision: str,
) -> JSONResponse:
    """A Xet token and CAS URL for uploads to this repository (``write`` on it)."""
    if not settings.hub_xet:
        raise XetUnavailable(lfs.xet_unavailable_message())
    await run_in_threadpool(find_hub_repository, session, namespace, name)
    xorbs = open_xorb_store(settings, store)
    await anyio.to_thread.run_sync(xet.sweep_xorbs, xorbs, namespace, name)
    base = str(request.base_url).rstrip("/")
    token = xet.issue_token(key, base, namespace, name, settings.upload_url_ttl_s)
    headers = {
        "X-Xet-Cas-Url": token.cas_url,
        "X-Xet-Access-Token": token.access_token,
        "X-Xet-Token-Expiration": str(token.expires_at),
    }
    body = {"casUrl": token.cas_url, "accessToken": token.access_token, "exp": token.expires_at}
    return JSONResponse(body, headers=headers)


def _xet_repository(request: Request, key: KeyDep, namespace: str, name: str) -> tuple[str, str]:
    check_repository_name(namespace, name)
    xet.check_token(key, namespace, name, bearer_token(request))
    return namespace, name


XetRepository = Annotated[tuple[str, str], Depends(_xet_repository)]


@router.get("/api/xet/{namespace}/{name}/v1/chunks/{prefix}/{chunk}")
def xet_dedup(repository: XetRepository, prefix: str, chunk: str) -> None:
    """Whether a chunk is known: never (no deduplication across uploads; it would tell a
    client what others uploaded)."""
    raise NotFound(f"chunk {chunk} is not known to this registry; upload it")


@router.post("/api/xet/{namespace}/{name}/v1/xorbs/{prefix}/{xorb}")
async def xet_xorb(
    request: Request,
    settings: SettingsDep,
    store: BlobStoreDep,
    repository: XetRepository,
    prefix: str,
    xorb: str,
) -> JSONResponse:
    """A xorb: kept only if its chunks hash to ``xorb`` (verified as it streams in)."""
    xorbs = open_xorb_store(settings, store)
    try:
        inserted = await xet_xorbs.receive_xorb(xorbs, *repository, xorb, request.stream())
    except LorryError as exc:  # hf_xet shows the status only: say why here
        logger.warning("xet: %s/%s: xorb %s refused: %s", *repository, xorb, exc.message)
        raise
    return JSONResponse({"was_inserted": inserted})


@router.post("/api/xet/{namespace}/{name}/v1/shards")
async def xet_shard(
    request: Request,
    session: SessionDep,
    store: BlobStoreDep,
    settings: SettingsDep,
    repository: XetRepository,
) -> JSONResponse:
    """A shard: each file it lists is rebuilt from its xorbs, checked against its sha256
    and stored as a blob, which a commit then names."""
    spool = await xet.spool_body(settings, request.stream(), xet.MAX_SHARD_BYTES, "shard")
    try:
        await anyio.to_thread.run_sync(
            xet.store_shard, session, store, settings, *repository, spool
        )
    except LorryError as exc:
        logger.warning("xet: %s/%s: shard refused: %s", *repository, exc.message)
        raise
    return JSONResponse({"result": 1})
