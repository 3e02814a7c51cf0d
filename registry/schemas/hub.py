"""Response bodies of the Hugging Face Hub-compatible API, in the Hub's own field names."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from registry.schemas.base import ProtocolSchema

__all__ = [
    "HubCommit",
    "HubCommitAuthor",
    "HubCommitResult",
    "HubLastCommit",
    "HubLfs",
    "HubModelInfo",
    "HubModelSummary",
    "HubRef",
    "HubRefs",
    "HubRepoUrl",
    "HubSibling",
    "HubTreeEntry",
    "HubTreeLfs",
]


class HubLfs(ProtocolSchema):
    sha256: str
    size: int
    pointer_size: int = Field(alias="pointerSize")


class HubSibling(ProtocolSchema):
    rfilename: str
    size: int
    blob_id: str = Field(alias="blobId")
    lfs: HubLfs


class HubModelInfo(ProtocolSchema):
    """The subset of the Hub's ``/api/models/{repo_id}`` answer that clients read."""

    id: str
    model_id: str = Field(alias="modelId")
    author: str
    sha: str | None = Field(description="None for a repository without a version yet")
    last_modified: str = Field(alias="lastModified")
    created_at: str = Field(alias="createdAt")
    private: bool = False
    gated: bool = False
    disabled: bool = False
    downloads: int = 0
    likes: int = 0
    library_name: str
    pipeline_tag: str | None
    tags: list[str]
    card_data: dict[str, Any] = Field(alias="cardData")
    siblings: list[HubSibling]
    used_storage: int = Field(alias="usedStorage")
    lorry: dict[str, Any] = Field(description="Lorry's version number, digest and aliases")


class HubTreeLfs(ProtocolSchema):
    oid: str
    size: int
    pointer_size: int = Field(alias="pointerSize")


class HubLastCommit(ProtocolSchema):
    id: str
    title: str
    date: str


class HubTreeEntry(ProtocolSchema):
    """A file (with ``size`` and ``lfs``) or a directory of a tree listing."""

    type: Literal["file", "directory"]
    oid: str
    path: str
    size: int = 0
    lfs: HubTreeLfs | None = None
    last_commit: HubLastCommit | None = Field(default=None, alias="lastCommit")


class HubRef(ProtocolSchema):
    name: str
    ref: str
    target_commit: str = Field(alias="targetCommit")


class HubRefs(ProtocolSchema):
    branches: list[HubRef]
    converts: list[HubRef] = []
    tags: list[HubRef]


class HubModelSummary(ProtocolSchema):
    """An item of ``GET /api/models`` (``list_models``)."""

    underscore_id: str = Field(alias="_id")
    id: str
    model_id: str = Field(alias="modelId")
    author: str
    sha: str | None
    last_modified: str = Field(alias="lastModified")
    created_at: str = Field(alias="createdAt")
    private: bool = False
    gated: bool = False
    disabled: bool = False
    downloads: int = 0
    likes: int = 0
    library_name: str
    tags: list[str]


class HubRepoUrl(ProtocolSchema):
    """The answer to ``create_repo``."""

    url: str
    name: str
    id: str


class HubCommitResult(ProtocolSchema):
    """The answer to a commit: the new version's commit id (or the head's, when empty)."""

    commit_oid: str = Field(alias="commitOid")
    commit_url: str = Field(alias="commitUrl")
    pull_request_url: str | None = Field(default=None, alias="pullRequestUrl")
    success: bool = True
    lorry: dict[str, Any] = Field(description="the version number and whether it is new")


class HubCommitAuthor(ProtocolSchema):
    user: str


class HubCommit(ProtocolSchema):
    """An item of ``list_repo_commits``: a version as a commit."""

    id: str
    title: str
    message: str
    authors: list[HubCommitAuthor]
    date: str
