"""Readiness: can the service reach its database and its blob store?"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from registry.errors import LorryError
from registry.schemas.repos import Readiness
from registry.storage.base import BlobStore


def check_readiness(session: Session, store: BlobStore) -> Readiness:
    checks: dict[str, str] = {}
    try:
        session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        checks["database"] = f"unavailable: {exc.__class__.__name__}: {exc}"
    try:
        store.check()
        checks["blob_store"] = "ok"
    except LorryError as exc:
        checks["blob_store"] = f"unavailable: {exc.message}"
    ready = all(value == "ok" for value in checks.values())
    return Readiness(status="ready" if ready else "unavailable", checks=checks)
