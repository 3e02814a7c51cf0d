"""Bodies of the Git LFS batch API (https://github.com/git-lfs/git-lfs/blob/main/docs/api/batch.md)
as huggingface_hub speaks it, with its multipart extension."""

from __future__ import annotations

from pydantic import Field

from registry.schemas.base import ProtocolSchema

LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"


class LfsObject(ProtocolSchema):
    oid: str
    size: int = Field(ge=0)


class LfsRef(ProtocolSchema):
    name: str


class LfsBatchRequest(ProtocolSchema):
    operation: str
    transfers: list[str] = Field(default_factory=lambda: ["basic"])
    objects: list[LfsObject] = Field(max_length=1000)
    hash_algo: str = "sha256"
    ref: LfsRef | None = None


class LfsAction(ProtocolSchema):
    href: str
    header: dict[str, str] | None = None
    expires_in: int | None = None


class LfsObjectError(ProtocolSchema):
    code: int
    message: str


class LfsObjectAnswer(ProtocolSchema):
    """``actions`` absent: the server has the object already (nothing to upload)."""

    oid: str
    size: int
    authenticated: bool = True
    actions: dict[str, LfsAction] | None = None
    error: LfsObjectError | None = None


class LfsBatchResponse(ProtocolSchema):
    transfer: str
    objects: list[LfsObjectAnswer]
    hash_algo: str = "sha256"


class LfsPart(ProtocolSchema):
    partNumber: int = Field(ge=1)  # noqa: N815 (the client's field name)
    etag: str


class LfsCompletion(ProtocolSchema):
    oid: str
    parts: list[LfsPart] = Field(max_length=10000)
