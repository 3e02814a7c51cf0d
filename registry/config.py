"""Settings of the Lorry service, read from ``LORRY_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

GiB = 1024**3
MiB = 1024**2


class Settings(BaseSettings):
    """One place for every setting; built in the app factory and injected."""

    model_config = SettingsConfigDict(env_prefix="LORRY_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".lorry")
    """Data directory of the embedded defaults (SQLite file, blob directory, temp files)."""

    database_url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///<home>/lorry.db``. PostgreSQL:
    ``postgresql+psycopg://user:pass@host:5432/lorry``."""

    blob_url: str | None = None
    """Blob store URL; default ``file://<home>/blobs``. S3/MinIO: ``s3://bucket[/prefix]``."""

    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str | None = None
    s3_secure: bool = False
    s3_part_size: int = 64 * MiB

    host: str = "127.0.0.1"
    port: int = 8765
    workers: int = Field(default=1, ge=1)
    """``lorry serve`` processes sharing the port (PostgreSQL only when more than one)."""

    max_file_bytes: int = 50 * GiB
    """Largest single file of a version."""
    max_version_bytes: int = 200 * GiB
    """Largest total size of the files of one version."""
    max_files_per_version: int = 1000
    max_metadata_file_bytes: int = 16 * MiB
    """Largest JSON / model card file that the service parses."""
    max_config_bytes: int = 1 * MiB
    """Largest adapter_config.json / config.json (real ones: 1-100 KB, rank_pattern included)."""
    max_front_matter_bytes: int = 64 * 1024
    """Largest YAML front matter of a model card (real cards carry 0.5-10 KB of metadata)."""
    max_safetensors_header_bytes: int = 1 * MiB
    """Largest safetensors JSON header that the service parses, per file. Real ones: a few KB
    (a LoRA adapter), ~150 KB (Llama-70B all-linear LoRA), under 100 KB per merged-model shard;
    raise it for adapters that target every expert of a large MoE (~4 MB)."""
    max_json_body_bytes: int = 4 * MiB
    """Largest JSON (or form) request body; blob uploads are limited by ``max_file_bytes``."""
    max_header_bytes: int = 64 * 1024
    """Largest request head (request line + headers) that ``lorry serve`` accepts."""

    max_recipe_inputs: int = Field(default=64, ge=1, le=1024)
    """Most inputs of one composition (mergekit merges take a handful; larger ones go in stages)."""
    max_output_rank: int = Field(default=4096, ge=1, le=65_536)
    """Largest integer ``output.rank`` a composition may ask for (LoRA ranks in use are <= 1024)."""

    anonymous_read: bool = True
    """Once tokens exist: whether requests without a token may read (list, show, pull)."""
    gc_grace_minutes: int = 60
    """``lorry gc`` keeps unreferenced blobs younger than this: a push may be about to
    commit a version that references them."""

    embedded_worker: bool = True
    """Run composition jobs inside ``lorry serve`` (threads on SQLite, a procrastinate
    worker on PostgreSQL); set it false where separate ``lorry worker`` processes run them."""
    job_threads: int = Field(default=1, ge=1)
    """Jobs one process (``lorry serve`` or ``lorry worker``) runs at the same time."""
    torch_threads: int | None = Field(default=None, ge=1, le=1024)
    """Threads torch uses for this process's jobs (compositions, merges, exports); unset:
    torch's own choice (one per core). On a machine shared with other busy processes, set
    it to the cores the worker really gets; results do not depend on it."""
    job_heartbeat_s: float = Field(default=5.0, gt=0)
    """How often a running job's process writes its heartbeat."""
    job_stale_after_s: float = Field(default=60.0, gt=0)
    """A running job whose heartbeat is older than this is taken as orphaned by a dead process."""
    job_max_attempts: int = Field(default=2, ge=1)
    """Runs of one job before an orphaned job is failed instead of retried."""
    principal_cache_s: float = Field(default=5.0, ge=0, le=300)
    """How long a process reuses a token it authenticated, without a database lookup: a
    token revoked through another replica or worker still works for at most this long
    (0: look every request's token up)."""
    access_log_flush_s: float = Field(default=1.0, gt=0, le=60)
    """How often the downloads recorded in memory are written to the access log: what a
    killed server process may lose at most."""
    access_log_max_pending: int = Field(default=100_000, ge=1000)
    """Download records kept in memory while the database is unreachable (oldest dropped)."""
    compose_module_delay_s: float = Field(default=0.0, ge=0)
    """Test aid: a pause after each composed module, to make a job slow enough to interrupt."""

    audit_signing_key: Path | None = None
    """PEM Ed25519 private key that signs audit checkpoints (``lorry audit keygen`` writes
    one); keep it off the database host's reach. Unset: no checkpoints are written."""
    audit_public_keys: Path | None = None
    """File of verifier keys (``name+keyid+base64``, one a line) that ``audit verify`` checks
    checkpoints with; holds no secret."""
    audit_checkpoint_origin: str = "lorry.local/audit"
    """The log's name: the first line of each checkpoint and the name of its key."""
    audit_checkpoint_targets: str = ""
    """Comma-separated places for checkpoints: ``file:///DIR``, ``blobstore:``, ``https://URL``
    (``registry.storage.checkpoints``)."""
    audit_checkpoint_interval_s: float = Field(default=300.0, ge=0)
    """``lorry serve`` and ``lorry worker`` write a checkpoint this often when the head moved
    (0: only on demand)."""
    audit_verify_checkpoints: int = Field(default=8, ge=1, le=1000)
    """How many of the newest checkpoints of each readable target ``audit verify`` checks."""
    audit_verify_interval_s: float = Field(default=60.0, ge=0)
    """``GET /api/v1/audit/verify`` reuses a result this young instead of walking the log
    again (callers without ``admin`` cannot ask for a fresh walk)."""
    audit_verify_batch: int = Field(default=1000, ge=1)
    """Events per query while walking the audit chain."""

    hub_lfs_min_bytes: int = Field(default=10 * MiB, ge=1)
    """Hub uploads: files at least this large are streamed (Xet, or the Git LFS batch API with
    ``HF_HUB_DISABLE_XET=1``: ``registry.services.upload_modes``); smaller files travel inline
    in the commit ("regular")."""
    hub_xet: bool = True
    """Serve the Xet upload path (``registry.services.xet``): hf_xet clients then stream files
    of at least ``hub_lfs_min_bytes``; off, only clients that announce the LFS path do."""
    lfs_part_bytes: int = Field(default=64 * MiB, ge=5 * MiB)
    """LFS uploads larger than this use the multipart transfer, in parts of this size."""
    upload_url_ttl_s: int = Field(default=3600, ge=1)
    """How long the signed upload URLs that the LFS batch API hands out stay valid."""
    upload_url_secret: str | None = None
    """Key that signs LFS upload URLs; default: a random key kept in ``<home>/upload-url.key``.
    Set the same value on every replica behind one address."""

    webhook_allow_private: bool = False
    """Let webhooks and deployment targets reach private, loopback and link-local addresses
    (off: such URLs are refused when created and again before each delivery, against SSRF)."""
    webhook_allow_cidrs: str = ""
    """Comma-separated networks allowed although private (``10.0.0.0/8,fd00::/8``): where the
    serving fleet lives, without opening every private address."""
    outbox_worker: bool = True
    """Deliver webhooks and deployment rollouts from this process (``lorry serve`` and
    ``lorry worker``); several processes share the work safely."""
    outbox_poll_s: float = Field(default=1.0, gt=0, le=60)
    """How often an idle outbox worker looks for due deliveries."""
    outbox_max_attempts: int = Field(default=8, ge=1, le=100)
    """Attempts of one delivery before it is marked failed (``lorry webhook redeliver``)."""
    outbox_backoff_s: float = Field(default=2.0, gt=0)
    """Delay after the first failed attempt; doubled after each one, with jitter."""
    outbox_backoff_max_s: float = Field(default=600.0, gt=0)
    """Longest delay between attempts, a ``Retry-After`` included."""
    outbox_timeout_s: float = Field(default=30.0, gt=0, le=600)
    """How long one delivery may take (connect + response); a claim lasts this plus a margin,
    after which a delivery whose worker died is taken up by another."""

    eval_tasks_max_bytes: int = Field(default=4 * MiB, ge=1024)
    """Largest total size of the task files (YAML + local data) uploaded with an evaluation
    job (``lorry eval run --tasks-from DIR``); larger suites go in a registry version."""
    eval_batch_size: int = Field(default=1, ge=1, le=1024)
    """lm-evaluation-harness batch size of evaluation jobs."""

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'lorry.db'}"

    def resolved_blob_url(self) -> str:
        if self.blob_url:
            return self.blob_url
        return f"file://{self.home / 'blobs'}"

    @property
    def tmp_dir(self) -> Path:
        """Where uploads are spooled before they enter the blob store."""
        return self.home / "tmp"
