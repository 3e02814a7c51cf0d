"""Bodies of the Git LFS batch API (https://github.com/git-lfs/git-lfs/blob/main/docs/api/batch.md)
as huggingface_hub speaks it, with its multipart extension."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"


class LfsObject(BaseModel):
    model_config = ConfigDict(extra="ignore")

    oid: str
    size: int = Field(ge=0)


class LfsRef(BaseModel):
    name: str


class LfsBatchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    operation: str
    transfers: list[str] = Field(default_factory=lambda: ["basic"])
    objects: list[LfsObject] = Field(max_length=1000)
    hash_algo: str = "sha256"
    ref: LfsRef | None = None


class LfsAction(BaseModel):
    href: str
    header: dict[str, str] | None = None
    expires_in: int | None = None


class LfsObjectError(BaseModel):
    code: int
    message: str


class LfsObjectAnswer(BaseModel):
    """``actions`` absent: the server has the object already (nothing to upload)."""

    oid: str
    size: int
    authenticated: bool = True
    actions: dict[str, LfsAction] | None = None
    error: LfsObjectError | None = None


class LfsBatchResponse(BaseModel):
    transfer: str
    objects: list[LfsObjectAnswer]
    hash_algo: str = "sha256"


class LfsPart(BaseModel):
    partNumber: int = Field(ge=1)  # noqa: N815 (the client's field name)
    etag: str


class LfsCompletion(BaseModel):
    model_config = ConfigDict(extra="ignore")

    oid: str
    parts: list[LfsPart] = Field(max_length=10000)
