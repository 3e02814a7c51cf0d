"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from registry.api.auth import principal_of
from registry.api.reads import Reader
from registry.config import Settings
from registry.services.access_log import AccessLog
from registry.services.audit import Caller
from registry.services.principal_cache import PrincipalCache
from registry.services.principals import Principal
from registry.storage.base import BlobStore

logger = logging.getLogger(__name__)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for the request; async, so that opening it costs no thread hop (a session
    connects on its first query, which runs in the route's thread). Closing it ends a
    SQLite read transaction in place (a local call, no I/O wait)."""
    engine = request.app.state.engine
    session = Session(engine)
    try:
        yield session
    finally:
        if session.in_transaction() and engine.dialect.name != "sqlite":
            # Ending a PostgreSQL transaction is a round trip: not on the event loop.
            await run_in_threadpool(_close, session)
        else:
            _close(session)


def _close(session: Session) -> None:
    try:
        session.close()
    except DBAPIError:
        # The database dropped the connection (a restart) after the response was
        # chosen: the pool discards it, and the next request gets a fresh one.
        logger.warning("database connection lost while closing a session", exc_info=True)


async def get_blob_store(request: Request) -> BlobStore:
    store: BlobStore = request.app.state.blob_store
    return store


async def current_principal(request: Request) -> Principal:
    """Who is calling and what they may do (``registry.api.auth``)."""
    return await principal_of(request)


async def get_access_log(request: Request) -> AccessLog:
    access_log: AccessLog = request.app.state.access_log
    return access_log


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
BlobStoreDep = Annotated[BlobStore, Depends(get_blob_store)]
AccessLogDep = Annotated[AccessLog, Depends(get_access_log)]


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def get_principal_cache(request: Request) -> PrincipalCache:
    cache: PrincipalCache = request.app.state.principal_cache
    return cache


PrincipalCacheDep = Annotated[PrincipalCache, Depends(get_principal_cache)]


async def get_caller(request: Request) -> Caller:
    # One dependency rather than three (principal, actor, request id): FastAPI spends
    # about as much CPU solving each as a hot read spends on its query.
    principal = await principal_of(request)
    request_id: str | None = getattr(request.state, "request_id", None)
    return Caller(actor=principal.name, request_id=request_id, principal=principal)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_reader(request: Request) -> Reader:
    reader: Reader = request.app.state.reader
    return reader


ReaderDep = Annotated[Reader, Depends(get_reader)]
"""Where the hot reads run their query (``registry.api.reads``)."""
