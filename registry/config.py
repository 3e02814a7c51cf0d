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
    max_safetensors_header_bytes: int = 100 * MiB
    """Largest safetensors JSON header that the service parses."""
    max_json_body_bytes: int = 4 * MiB
    """Largest JSON (or form) request body; blob uploads are limited by ``max_file_bytes``."""
    max_header_bytes: int = 64 * 1024
    """Largest request head (request line + headers) that ``lorry serve`` accepts."""

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
