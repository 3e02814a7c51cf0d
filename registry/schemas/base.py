"""The base class of every API body."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    """A body of Lorry's own API: a field it does not declare is an error (422), so a
    misspelt option is refused rather than ignored."""

    model_config = ConfigDict(extra="forbid")


class ProtocolSchema(Schema):
    """A body of a protocol that other tools define (the Hugging Face Hub API, Git LFS):
    fields beyond those Lorry reads are ignored, since those clients send more, and a
    field may be given by its name or by its protocol alias (``lastModified``)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
