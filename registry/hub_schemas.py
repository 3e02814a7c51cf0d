"""Response bodies of the Hugging Face Hub-compatible API, in the Hub's own field names."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "HubLastCommit",
    "HubLfs",
    "HubModelInfo",
    "HubRef",
    "HubRefs",
    "HubSibling",
    "HubTreeEntry",
    "HubTreeLfs",
]


class _HubSchema(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class HubLfs(_HubSchema):
    sha256: str
    size: int
    pointer_size: int = Field(alias="pointerSize")


class HubSibling(_HubSchema):
    rfilename: str
    size: int
    blob_id: str = Field(alias="blobId")
    lfs: HubLfs


class HubModelInfo(_HubSchema):
    """The subset of the Hub's ``/api/models/{repo_id}`` answer that clients read."""

    id: str
    model_id: str = Field(alias="modelId")
    author: str
    sha: str
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


class HubTreeLfs(_HubSchema):
    oid: str
    size: int
    pointer_size: int = Field(alias="pointerSize")


class HubLastCommit(_HubSchema):
    id: str
    title: str
    date: str


class HubTreeEntry(_HubSchema):
    """A file (with ``size`` and ``lfs``) or a directory of a tree listing."""

    type: Literal["file", "directory"]
    oid: str
    path: str
    size: int = 0
    lfs: HubTreeLfs | None = None
    last_commit: HubLastCommit | None = Field(default=None, alias="lastCommit")


class HubRef(_HubSchema):
    name: str
    ref: str
    target_commit: str = Field(alias="targetCommit")


class HubRefs(_HubSchema):
    branches: list[HubRef]
    converts: list[HubRef] = []
    tags: list[HubRef]
