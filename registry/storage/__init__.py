"""Blob storage: one ``BlobStore`` protocol, a local-disk and an S3 backend, one factory."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from registry.config import Settings
from registry.errors import LorryError
from registry.storage.base import BlobStore, blob_key
from registry.storage.local import LocalBlobStore
from registry.storage.s3 import S3BlobStore

__all__ = [
    "BlobStore",
    "InvalidBlobUrl",
    "LocalBlobStore",
    "S3BlobStore",
    "blob_key",
    "open_blob_store",
]

SUPPORTED_SCHEMES = ("file", "s3")


class InvalidBlobUrl(LorryError):
    """``LORRY_BLOB_URL`` names no backend Lorry has (a configuration error)."""

    code = "invalid_blob_url"
    status_code = 500


def open_blob_store(settings: Settings) -> BlobStore:
    """The blob store that ``settings.resolved_blob_url()`` names.

    ``file:///path`` (or ``file://relative/path``) is a directory on local disk;
    ``s3://bucket[/prefix]`` is a bucket on ``settings.s3_endpoint``, created
    here if it does not exist (so this call talks to the server and raises
    ``StorageUnavailable`` when it cannot be reached).
    """
    url = settings.resolved_blob_url()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "file":
        path = unquote(url[len("file://") :])
        if not path:
            raise InvalidBlobUrl(f"blob URL {url!r} names no directory; use file:///path/to/blobs")
        return LocalBlobStore(Path(path))
    if scheme == "s3":
        parts = urlsplit(url)
        if not parts.netloc:
            raise InvalidBlobUrl(f"blob URL {url!r} names no bucket; use s3://bucket[/prefix]")
        store = S3BlobStore(
            settings.s3_endpoint,
            parts.netloc,
            prefix=unquote(parts.path).strip("/"),
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            region=settings.s3_region,
            secure=settings.s3_secure,
            part_size=settings.s3_part_size,
        )
        store.ensure_bucket()
        return store
    supported = ", ".join(f"{name}://" for name in SUPPORTED_SCHEMES)
    raise InvalidBlobUrl(
        f"blob URL {url!r} has an unsupported scheme; LORRY_BLOB_URL must start with one of "
        f"{supported} (e.g. file:///var/lib/lorry/blobs or s3://bucket/prefix)"
    )
