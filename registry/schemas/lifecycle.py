"""Bodies of archiving and deleting repositories and versions."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from registry.schemas.base import Schema


class ArchiveRequest(Schema):
    reason: str | None = Field(default=None, max_length=10_000)
    """Why: required to archive, optional to unarchive."""


class DeletedVersion(Schema):
    version: int
    digest: str


class DeletionOut(Schema):
    """What a deletion removed; reads of it now answer with who, when and why."""

    repository: str
    version: int | None
    """The deleted version; ``None``: the whole repository."""
    versions: list[DeletedVersion]
    deleted_by: str
    deleted_at: datetime
    reason: str
    files: int
    """Files removed with it; their blobs that no remaining version shares go at the next
    ``lorry gc``."""
