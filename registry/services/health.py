"""Readiness: can the service reach its database and its blob store?"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from registry.errors import LorryError
from registry.schemas.repos import Readiness
from registry.storage.base import BlobStore

logger = logging.getLogger(__name__)
DATABASE_UNAVAILABLE = "unavailable: the database did not answer (the server log says why)"
BLOB_STORE_UNAVAILABLE = "unavailable: the blob store did not answer (the server log says why)"
"""What ``/readyz`` tells an unauthenticated caller: the error itself (host names, database
and bucket names, driver messages) goes to the server log only."""


def check_readiness(session: Session, store: BlobStore) -> Readiness:
    checks: dict[str, str] = {}
    try:
        session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError:
        logger.exception("readiness: the database check failed")
        checks["database"] = DATABASE_UNAVAILABLE
    try:
        store.check()
        checks["blob_store"] = "ok"
    except LorryError as exc:
        logger.error("readiness: the blob store check failed: %s", exc.message)
        checks["blob_store"] = BLOB_STORE_UNAVAILABLE
    ready = all(value == "ok" for value in checks.values())
    return Readiness(status="ready" if ready else "unavailable", checks=checks)
