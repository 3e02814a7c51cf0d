"""API schemas of the access log (downloads); the table is ``registry.tables.AccessRecord``."""

from __future__ import annotations

from datetime import datetime

from registry.schemas.base import Schema


class AccessRecordOut(Schema):
    id: int
    at: datetime
    actor: str
    repository: str
    version: int
    digest: str
    path: str
    sha256: str
    size: int
    revision: str
    via: str
    redirect: bool
    range: str | None
    address: str | None
    forwarded_for: str | None
    user_agent: str | None
    request_id: str | None


class AccessList(Schema):
    items: list[AccessRecordOut]
    total: int
