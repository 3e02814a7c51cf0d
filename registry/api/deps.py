"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from registry.auth import resolve_principal
from registry.config import Settings
from registry.services.access_log import AccessLog
from registry.services.audit import Caller
from registry.services.principals import Principal
from registry.storage.base import BlobStore

logger = logging.getLogger(__name__)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    session = Session(request.app.state.engine)
    try:
        yield session
    finally:
        try:
            session.close()
        except DBAPIError:
            # The database dropped the connection (a restart) after the response was
            # chosen: the pool discards it, and the next request gets a fresh one.
            logger.warning("database connection lost while closing a session", exc_info=True)


def get_blob_store(request: Request) -> BlobStore:
    store: BlobStore = request.app.state.blob_store
    return store


def current_principal(request: Request) -> Principal:
    """Who is calling and what they may do (``registry.auth``)."""
    return resolve_principal(request)


def current_actor(request: Request) -> str:
    """Who is calling: the token's principal; ``local`` until tokens exist."""
    return resolve_principal(request).name


def get_request_id(request: Request) -> str | None:
    request_id: str | None = getattr(request.state, "request_id", None)
    return request_id


def get_access_log(request: Request) -> AccessLog:
    access_log: AccessLog = request.app.state.access_log
    return access_log


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
BlobStoreDep = Annotated[BlobStore, Depends(get_blob_store)]
ActorDep = Annotated[str, Depends(current_actor)]
RequestIdDep = Annotated[str | None, Depends(get_request_id)]
AccessLogDep = Annotated[AccessLog, Depends(get_access_log)]


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def get_caller(actor: ActorDep, request_id: RequestIdDep, principal: PrincipalDep) -> Caller:
    return Caller(actor=actor, request_id=request_id, principal=principal)


CallerDep = Annotated[Caller, Depends(get_caller)]
