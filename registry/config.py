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

    max_file_bytes: int = 50 * GiB
    """Largest single file of a version."""
    max_version_bytes: int = 200 * GiB
    """Largest total size of the files of one version."""
    max_files_per_version: int = 1000
    max_metadata_file_bytes: int = 16 * MiB
    """Largest JSON / model card file that the service parses."""
    max_safetensors_header_bytes: int = 100 * MiB
    """Largest safetensors JSON header that the service parses."""

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
