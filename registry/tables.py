"""Database tables (SQLModel ``table=True`` classes); API schemas live in ``registry.schemas``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every dialect.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are
    stored as naive UTC and made aware again when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _timestamp(*, index: bool = False) -> Any:
    return Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=index)
    )


class Repository(SQLModel, table=True):
    __tablename__ = "repositories"
    __table_args__ = (UniqueConstraint("namespace", "name", name="uq_repositories_namespace_name"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    namespace: str = Field(sa_column=Column(String(96), nullable=False))
    name: str = Field(sa_column=Column(String(96), nullable=False))
    kind: str = Field(default="adapter", sa_column=Column(String(16), nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(sa_column=Column(String(255), nullable=False))
    created_at: datetime = _timestamp()
    main_alias: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    """The alias that ``main`` means to Hugging Face clients; ``None``: the latest version."""
    base_model_link: str | None = Field(default=None, sa_column=Column(String(512), nullable=True))
    """Setting: the model repository (``NAMESPACE/NAME[@REF]``) new adapter versions link to."""
    archived_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    """Set while the repository is archived (``registry.services.lifecycle``): read only,
    left out of listings unless asked for."""
    archived_by: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    archive_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Version(SQLModel, table=True):
    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("repository_id", "number", name="uq_versions_repository_number"),
        UniqueConstraint("repository_id", "digest", name="uq_versions_repository_digest"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    repository_id: int = Field(
        sa_column=Column(Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False)
    )
    number: int = Field(sa_column=Column(Integer, nullable=False))
    digest: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    """Hex sha256 of the canonical manifest."""
    message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    kind: str = Field(default="adapter", sa_column=Column(String(16), nullable=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    base_model: str | None = Field(
        default=None, sa_column=Column(String(512), nullable=True, index=True)
    )
    """``base_model_name_or_path`` of the adapter, kept apart from the metadata for search."""
    base_model_link: str | None = Field(default=None, sa_column=Column(String(512), nullable=True))
    """The model repository of this registry the adapter was trained on
    (``registry.services.base_models``)."""
    adapter_metadata: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSON, nullable=False)
    )
    card: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    lineage: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_by: str = Field(sa_column=Column(String(255), nullable=False))
    created_at: datetime = _timestamp()


class VersionFile(SQLModel, table=True):
    __tablename__ = "version_files"
    __table_args__ = (Index("ix_version_files_sha256", "sha256"),)

    version_id: int = Field(
        sa_column=Column(Integer, ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True)
    )
    path: str = Field(sa_column=Column(String(1024), primary_key=True))
    sha256: str = Field(sa_column=Column(String(64), nullable=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))


class Blob(SQLModel, table=True):
    """A blob referenced by at least one committed version."""

    __tablename__ = "blobs"

    sha256: str = Field(sa_column=Column(String(64), primary_key=True))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = _timestamp()


class BlobUpload(SQLModel, table=True):
    """A namespace's upload of a blob: the server received and hashed its bytes for that
    namespace (``registry.services.blob_claims``)."""

    __tablename__ = "blob_uploads"

    namespace: str = Field(sa_column=Column(String(96), primary_key=True))
    sha256: str = Field(sa_column=Column(String(64), primary_key=True, index=True))
    created_at: datetime = _timestamp()


class Alias(SQLModel, table=True):
    __tablename__ = "aliases"

    repository_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
        )
    )
    name: str = Field(sa_column=Column(String(64), primary_key=True))
    version_id: int = Field(
        sa_column=Column(Integer, ForeignKey("versions.id"), nullable=False, index=True)
    )
    updated_by: str = Field(sa_column=Column(String(255), nullable=False))
    updated_at: datetime = _timestamp()
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class AuditEvent(SQLModel, table=True):
    """Append-only: rows are inserted, never updated or deleted."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    at: datetime = _timestamp(index=True)
    actor: str = Field(sa_column=Column(String(255), nullable=False, index=True))
    action: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    repository: str | None = Field(
        default=None, sa_column=Column(String(200), nullable=True, index=True)
    )
    target: str = Field(sa_column=Column(String(1024), nullable=False))
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    request_id: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    prev_hash: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    """Hash of the event before this one (``registry.services.audit_chain``)."""
    hash: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    """sha256 over this event's fields and ``prev_hash``."""


class AuditChainHead(SQLModel, table=True):
    """One row: the newest event of the audit chain; appending locks it."""

    __tablename__ = "audit_chain_head"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    last_event_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    last_hash: str = Field(sa_column=Column(String(64), nullable=False))


class ApiToken(SQLModel, table=True):
    """An API token: only the sha256 of its secret is stored."""

    __tablename__ = "api_tokens"

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    principal: str = Field(sa_column=Column(String(255), nullable=False))
    token_hash: str = Field(sa_column=Column(String(64), nullable=False))
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    namespaces: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_by: str = Field(sa_column=Column(String(255), nullable=False))
    created_at: datetime = _timestamp()
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class AliasPolicy(SQLModel, table=True):
    """A protected-alias rule: matching aliases need the ``promote`` scope (and a reason)."""

    __tablename__ = "alias_policies"
    __table_args__ = (
        UniqueConstraint("repository_pattern", "alias_pattern", name="uq_alias_policies_patterns"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    repository_pattern: str = Field(sa_column=Column(String(200), nullable=False))
    alias_pattern: str = Field(sa_column=Column(String(64), nullable=False))
    require_reason: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_by: str = Field(sa_column=Column(String(255), nullable=False))
    created_at: datetime = _timestamp()
    requirements: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    """Evaluation gates: ``{task, metric, filter, op, threshold}`` each
    (``registry.services.eval_gates``)."""
    no_regression: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    """``{task, metric, filter}`` each: no worse than the version the alias points to now."""


class Job(SQLModel, table=True):
    """A job (a composition, an export ...): Lorry's record of its state; a queue only
    distributes job ids. What the job does is its kind's typed ``spec``
    (``registry.services.job_kinds``)."""

    __tablename__ = "jobs"

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    """A key of ``registry.services.job_kinds.JOB_KINDS``: ``compose``, ``export`` ..."""
    state: str = Field(sa_column=Column(String(16), nullable=False, index=True))
    target: str = Field(sa_column=Column(String(200), nullable=False, index=True))
    """The repository the job writes to: a composition's target, an export's source."""
    queue: str = Field(sa_column=Column(String(16), nullable=False))
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    """The kind's spec (a composition: its recipe) with every registry reference pinned to
    ``ns/name@sha256:<digest>``."""
    inputs: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    idempotency_key: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    alias: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    progress_done: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    progress_total: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    current_module: str | None = Field(default=None, sa_column=Column(String(512), nullable=True))
    log: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    error_code: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    error_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    result_version: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    result_digest: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    cancel_requested: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    worker: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    created_by: str = Field(sa_column=Column(String(255), nullable=False))
    request_id: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    created_at: datetime = _timestamp(index=True)
    started_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    heartbeat_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class VersionExport(SQLModel, table=True):
    """A derived file of a version (a GGUF export): the version's manifest and digest stay
    as they were; the file is served beside them under its own path."""

    __tablename__ = "version_exports"
    __table_args__ = (Index("ix_version_exports_sha256", "sha256"),)

    version_id: int = Field(
        sa_column=Column(Integer, ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True)
    )
    path: str = Field(sa_column=Column(String(1024), primary_key=True))
    format: str = Field(sa_column=Column(String(16), nullable=False))
    outtype: str = Field(sa_column=Column(String(16), nullable=False))
    sha256: str = Field(sa_column=Column(String(64), nullable=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    job_id: str = Field(sa_column=Column(String(32), nullable=False, index=True))
    lineage: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    """``exported_from`` (repository, version, digest), ``base``, ``libraries`` and the job."""
    created_by: str = Field(sa_column=Column(String(255), nullable=False))
    created_at: datetime = _timestamp()
    merged_into_version_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("versions.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    """A merged export (an adapter merged into a base model): the base's version, so that
    the base lists what was merged into it; ``lineage.base`` keeps its digest regardless."""


class AccessRecord(SQLModel, table=True):
    """A file handed out to a client (a pull): append-only, written in batches
    (``registry.services.access_log``), never part of the audit chain."""

    __tablename__ = "access_log"
    __table_args__ = (Index("ix_access_log_repository_version", "repository", "version"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    at: datetime = _timestamp(index=True)
    actor: str = Field(sa_column=Column(String(255), nullable=False, index=True))
    repository: str = Field(sa_column=Column(String(200), nullable=False))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    digest: str = Field(sa_column=Column(String(71), nullable=False))
    path: str = Field(sa_column=Column(String(1024), nullable=False))
    sha256: str = Field(sa_column=Column(String(64), nullable=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    revision: str = Field(sa_column=Column(String(255), nullable=False))
    via: str = Field(sa_column=Column(String(8), nullable=False))
    redirect: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    byte_range: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    address: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    forwarded_for: str | None = Field(default=None, sa_column=Column(String(512), nullable=True))
    user_agent: str | None = Field(default=None, sa_column=Column(String(512), nullable=True))
    request_id: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))


class DownloadCount(SQLModel, table=True):
    """Files handed out per version, summed from the access log as its batches are written."""

    __tablename__ = "download_counts"

    repository: str = Field(sa_column=Column(String(200), primary_key=True))
    version: int = Field(sa_column=Column(Integer, primary_key=True))
    downloads: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class WebhookSubscription(SQLModel, table=True):
    """Where events of matching repositories are posted (``registry.services.webhooks``).

    ``secret`` signs each delivery; it is stored as given (the service needs it to sign)
    and returned only by the request that creates the subscription."""

    __tablename__ = "webhook_subscriptions"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    namespace: str = Field(sa_column=Column(String(100), nullable=False, index=True))
    repositories: str = Field(sa_column=Column(String(200), nullable=False))
    """A glob over repository names of ``namespace`` (``*``, ``sql-*``)."""
    events: list[str] = Field(sa_column=Column(JSON, nullable=False))
    url: str = Field(sa_column=Column(String(2048), nullable=False))
    secret: str = Field(sa_column=Column(String(255), nullable=False))
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_by: str = Field(sa_column=Column(String(255), nullable=False))
    created_at: datetime = _timestamp()


class DeploymentTarget(SQLModel, table=True):
    """A server that serves an alias of a repository (``registry.services.deployments``)."""

    __tablename__ = "deployment_targets"
    __table_args__ = (UniqueConstraint("url", "lora_name", name="uq_deployment_targets_url_name"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    repository: str = Field(sa_column=Column(String(200), nullable=False, index=True))
    alias: str = Field(sa_column=Column(String(64), nullable=False))
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    url: str = Field(sa_column=Column(String(2048), nullable=False))
    lora_name: str = Field(sa_column=Column(String(255), nullable=False))
    secret: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    """Signs the rollouts of kinds that sign (``webhook``); returned only at creation."""
    served_version: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    served_digest: str | None = Field(default=None, sa_column=Column(String(71), nullable=True))
    served_since: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    last_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    created_by: str = Field(sa_column=Column(String(255), nullable=False))
    created_at: datetime = _timestamp()


class OutboxDelivery(SQLModel, table=True):
    """One message for one destination, written in the transaction of the change it reports
    and sent by the outbox workers (``registry.jobs.outbox``): at least once, retried."""

    __tablename__ = "outbox_deliveries"
    __table_args__ = (Index("ix_outbox_deliveries_due", "state", "next_attempt_at"),)

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    event_id: str = Field(sa_column=Column(String(32), nullable=False, index=True))
    event: str = Field(sa_column=Column(String(64), nullable=False))
    repository: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    subscription_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
            nullable=True,
            index=True,
        ),
    )
    target_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("deployment_targets.id", ondelete="CASCADE"),
            nullable=True,
            index=True,
        ),
    )
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    state: str = Field(sa_column=Column(String(16), nullable=False))
    """``pending``, ``succeeded``, ``failed`` or ``superseded`` (a newer rollout replaced it)."""
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    claimed_by: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    last_status: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    log: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """One entry per attempt: ``at``, ``status``, ``error``, ``ms``."""
    redelivery_of: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    created_at: datetime = _timestamp()
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


class EvalDocument(SQLModel, table=True):
    """An evaluation document as it was sent (lm-evaluation-harness JSON, a plain
    document, a card's ``model-index``, an ``.eval_results`` file): insert only."""

    __tablename__ = "eval_documents"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    version_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("versions.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    digest: str = Field(sa_column=Column(String(64), nullable=False))
    """The version's digest: results stay bound to the files they were measured on."""
    source: str = Field(sa_column=Column(String(16), nullable=False))
    path: str | None = Field(default=None, sa_column=Column(String(1024), nullable=True))
    """The file of the version it was read from (card results), else ``None``."""
    document: Any = Field(sa_column=Column(JSON, nullable=False))
    created_by: str = Field(sa_column=Column(String(255), nullable=False))
    created_at: datetime = _timestamp()


class EvalResult(SQLModel, table=True):
    """One metric of one task measured on a version: insert only, never updated."""

    __tablename__ = "eval_results"
    __table_args__ = (Index("ix_eval_results_version_task_metric", "version_id", "task", "metric"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    document_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("eval_documents.id", ondelete="CASCADE"), nullable=False
        )
    )
    version_id: int = Field(
        sa_column=Column(Integer, ForeignKey("versions.id", ondelete="CASCADE"), nullable=False)
    )
    digest: str = Field(sa_column=Column(String(64), nullable=False))
    task: str = Field(sa_column=Column(String(200), nullable=False))
    metric: str = Field(sa_column=Column(String(200), nullable=False))
    filter: str = Field(default="none", sa_column=Column(String(200), nullable=False))
    value: float = Field(sa_column=Column(Float, nullable=False))
    stderr: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    n_shot: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    higher_is_better: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    dataset: str | None = Field(default=None, sa_column=Column(String(512), nullable=True))
    split: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    revision: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    notes: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    source: str = Field(sa_column=Column(String(16), nullable=False))
    created_by: str = Field(sa_column=Column(String(255), nullable=False))
    created_at: datetime = _timestamp()


class Tombstone(SQLModel, table=True):
    """What is left of a deleted version (``version`` set) or repository (``version`` None):
    reads of it answer who deleted it, when and why, and its number is never given again
    (``registry.services.lifecycle``). Keyed by the repository's name, not its row, so it
    outlives the repository."""

    __tablename__ = "tombstones"
    __table_args__ = (Index("ix_tombstones_repository_version", "repository", "version"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    repository: str = Field(sa_column=Column(String(200), nullable=False))
    version: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    digest: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    deleted_by: str = Field(sa_column=Column(String(255), nullable=False))
    deleted_at: datetime = _timestamp()
    reason: str = Field(sa_column=Column(Text, nullable=False))


metadata = SQLModel.metadata
