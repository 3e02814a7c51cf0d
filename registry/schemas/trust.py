"""API schemas of tokens, protected-alias rules, audit verification and gc."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from registry.schemas.base import Schema

Scope = Literal["read", "write", "promote", "admin"]
NAMESPACE_PATTERN = r"^(\*|[A-Za-z0-9*?][A-Za-z0-9._*?-]{0,95}(/\*)?)$"
REPOSITORY_PATTERN = (
    r"^(\*|[A-Za-z0-9*?][A-Za-z0-9._*?-]{0,95}/(\*|[A-Za-z0-9*?][A-Za-z0-9._*?-]{0,95}))$"
)
ALIAS_PATTERN = r"^[a-z*?][a-z0-9._*?-]{0,63}$"


class TokenCreate(Schema):
    principal: str = Field(
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$",
        description="who uses the token; audit events name it as the actor",
    )
    scopes: list[Scope] = Field(min_length=1, max_length=4)
    namespaces: list[str] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        max_length=100,
        description="namespace patterns such as `acme/*` or `*`",
    )
    description: str = Field(default="", max_length=1000)
    expires_at: datetime | None = None


class TokenOut(Schema):
    id: str
    principal: str
    scopes: list[str]
    namespaces: list[str]
    description: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="the secret; shown only in this response")


class TokenList(Schema):
    items: list[TokenOut]


class PolicyCreate(Schema):
    repository: str = Field(
        max_length=200,
        pattern=REPOSITORY_PATTERN,
        description="`ns/name`, `ns/*` (a namespace) or `*` (every repository)",
    )
    alias: str = Field(max_length=64, pattern=ALIAS_PATTERN, description="alias name or pattern")
    require_reason: bool = True
    description: str = Field(default="", max_length=1000)
    requirements: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="evidence a move needs, e.g. `sql_eval/exact_match >= 0.80`",
    )
    no_regression: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="metrics (`task/metric`) no worse than on the version the alias holds now",
    )


class PolicyOut(Schema):
    id: int
    repository: str
    alias: str
    require_reason: bool
    description: str
    created_by: str
    created_at: datetime
    requirements: list[str] = []
    no_regression: list[str] = []


class PolicyList(Schema):
    items: list[PolicyOut]


CheckpointStatus = Literal[
    "confirmed", "truncated", "rewritten", "malformed", "unknown_key", "bad_signature"
]


class ChainProblemOut(Schema):
    kind: Literal[
        "edited",
        "removed",
        "reordered",
        "inserted",
        "truncated",
        "rewritten",
        "malformed",
        "unknown_key",
        "bad_signature",
    ]
    event_id: int | None
    message: str
    checkpoint: str | None = None
    """The checkpoint that proves it (where it was read), for the checkpoint kinds."""


class CheckpointCheckOut(Schema):
    """One checkpoint that ``audit verify`` read, and what the log says to it."""

    location: str
    status: CheckpointStatus
    event_id: int | None = None
    size: int | None = None
    head_hash: str | None = None
    signed_at: datetime | None = None
    message: str | None = None


class AuditVerification(Schema):
    ok: bool
    events: int
    head_hash: str
    head_event_id: int | None
    problem: ChainProblemOut | None
    anchored: bool = False
    """At least one signed checkpoint outside the database confirmed the log."""
    checkpoints: list[CheckpointCheckOut] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    verified_at: datetime | None = None
    cached: bool = False
    """Served from the result of an earlier walk (``LORRY_AUDIT_VERIFY_INTERVAL_S``)."""


class CheckpointOut(Schema):
    """A signed checkpoint of the audit chain's head, as written."""

    origin: str
    size: int
    event_id: int
    head_hash: str
    signed_at: datetime
    key: str
    """The verifier key (``name+keyid+base64``) that checks it."""
    note: str
    written_to: list[str]


class AliasAt(Schema):
    repository: str
    alias: str
    time: datetime
    version: int | None = Field(description="`null`: the alias did not exist at that time")
    digest: str | None
    since: datetime | None = Field(description="when the alias was moved there")
    actor: str | None
    reason: str | None
    event_id: int | None


class GcBlob(Schema):
    sha256: str
    size: int


class GcScratch(Schema):
    name: str = Field(description="the entry under LORRY_HOME/tmp (no path)")
    bytes: int = Field(description="disk space it holds")


class GcReport(Schema):
    dry_run: bool
    grace_minutes: int
    unreferenced: list[GcBlob]
    deleted: list[str]
    kept_recent: int = Field(description="unreferenced blobs younger than the grace period")
    bytes: int = Field(description="total size of the unreferenced blobs listed")
    scratch: list[GcScratch] = Field(
        default_factory=list,
        description="upload spool files and job directories that a crashed process left in "
        "LORRY_HOME/tmp (removed with delete; never one that a live upload or job uses)",
    )
    scratch_bytes: int = Field(default=0, description="total size of those entries")
