"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from registry.config import Settings
from registry.services.audit import Caller
from registry.storage.base import BlobStore


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


def get_blob_store(request: Request) -> BlobStore:
    store: BlobStore = request.app.state.blob_store
    return store


def current_actor() -> str:
    """Who is calling. ``local`` until tokens exist; authentication plugs in here."""
    return "local"


def get_request_id(request: Request) -> str | None:
    request_id: str | None = getattr(request.state, "request_id", None)
    return request_id


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
BlobStoreDep = Annotated[BlobStore, Depends(get_blob_store)]
ActorDep = Annotated[str, Depends(current_actor)]
RequestIdDep = Annotated[str | None, Depends(get_request_id)]


def get_caller(actor: ActorDep, request_id: RequestIdDep) -> Caller:
    return Caller(actor=actor, request_id=request_id)


CallerDep = Annotated[Caller, Depends(get_caller)]
