"""API schemas of repositories, versions, aliases, audit events and health checks."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from registry.schemas.base import Schema

Kind = Literal["adapter", "model"]


class FileEntry(Schema):
    path: str = Field(min_length=1, max_length=1024)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="lowercase hex sha256")
    size: int = Field(ge=0)


class PublishRequest(Schema):
    files: list[FileEntry] = Field(min_length=1)
    message: str | None = Field(default=None, max_length=10_000)
    alias: str | None = None
    kind: Kind = "adapter"
    base_model: str | None = Field(
        default=None,
        max_length=512,
        description="adapters: the model repository NAMESPACE/NAME[@REF] of this registry that "
        "it was trained on (default: the repository's base_model setting, else "
        "base_model_name_or_path when it names a model repository here)",
    )


class BlobInfo(Schema):
    sha256: str
    size: int


class RepoArchive(Schema):
    at: datetime
    by: str
    reason: str | None


class Repo(Schema):
    id: str
    namespace: str
    name: str
    kind: str
    description: str
    tags: list[str]
    created_by: str
    created_at: datetime
    latest_version: int | None
    aliases: dict[str, int]
    base_model: str | None
    """The base model to use: the registry link, else a Hub id; never a local path."""
    base_model_link: str | None = None
    """The model repository of this registry that the latest version links to."""
    base_model_setting: str | None = None
    """The repository setting that Hub commits link new adapter versions to."""
    main_alias: str | None = None
    downloads: int = Field(default=0, description="files downloaded, all versions")
    archived: RepoArchive | None = None
    """Set while the repository is archived (read only, left out of listings)."""


class RepoList(Schema):
    items: list[Repo]
    total: int


class VersionOut(Schema):
    repository: str
    version: int
    digest: str
    commit: str
    kind: str
    message: str | None
    created_by: str
    created_at: datetime
    size: int
    files: list[FileEntry]
    metadata: dict[str, Any]
    card: dict[str, Any]
    aliases: list[str]
    lineage: dict[str, Any] | None
    downloads: int = Field(default=0, description="files of this version downloaded")


class VersionList(Schema):
    items: list[VersionOut]
    total: int


class AliasUpdate(Schema):
    version: str | int = Field(description="a ref: version number, alias, `latest` or digest")
    reason: str | None = Field(default=None, max_length=10_000)
    override_gate: bool = Field(
        default=False,
        description="admin only, with a reason: move even where an evaluation gate refuses",
    )


class AliasOut(Schema):
    repository: str
    name: str
    version: int
    digest: str
    updated_by: str
    updated_at: datetime
    reason: str | None


class AliasList(Schema):
    items: list[AliasOut]


class AliasHistoryEntry(Schema):
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str | None
    at: datetime
    request_id: str | None


class AliasHistory(Schema):
    items: list[AliasHistoryEntry]


class AuditEventOut(Schema):
    id: int
    at: datetime
    actor: str
    action: str
    repository: str | None
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    hash: str | None = Field(
        default=None, description="sha256 chaining this event to the one before it"
    )


class AuditList(Schema):
    items: list[AuditEventOut]
    total: int


class Health(Schema):
    status: str


class Readiness(Schema):
    status: str
    checks: dict[str, str]


class RepoUpdate(Schema):
    """Repository settings; a field left out keeps its value."""

    main_alias: str | None = Field(
        default=None,
        description="the alias Hugging Face clients get for `main`; null: the latest version",
    )
    description: str | None = Field(default=None, max_length=10_000)
    tags: list[str] | None = None
    base_model: str | None = Field(
        default=None,
        max_length=512,
        description="the model repository NAMESPACE/NAME[@REF] of this registry that new "
        "adapter versions (Hub commits included) link to; empty clears it",
    )
