"""Short-lived signed upload URLs for the Git LFS batch API.

huggingface_hub sends the bytes of an LFS upload (``PUT`` of the whole file or of
each part, then the multipart completion ``POST``) to the URLs the batch answer
names, without its ``Authorization`` header, as it would to S3. So an upload URL
carries its own authority: the batch route checks the caller's ``write`` scope on
the repository, then signs ``(upload id, oid, size, part size, expiry, namespace)`` with a
server key (HMAC-SHA256). An upload route accepts a request only with an unexpired
signature over exactly these values, and the bytes it receives are stored only if
they hash to the signed oid, so a URL cannot be reused for other content.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from registry.config import Settings
from registry.errors import Forbidden, StorageUnavailable

_KEY_FILE = "upload-url.key"
_HEX = re.compile(r"[0-9a-f]+")
_NAMESPACE = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")
_VERSION = "v2"


@dataclass(frozen=True)
class UploadGrant:
    """What one signed URL allows: upload ``size`` bytes hashing to ``oid``; ``part_size`` is
    0 for a single ``PUT`` (basic transfer), else the multipart part size."""

    upload_id: str
    oid: str
    size: int
    part_size: int
    expires_at: int
    namespace: str = ""
    """The namespace the batch call was for: the upload gives it the blob
    (``registry.services.blob_claims``)."""

    def _message(self) -> bytes:
        fields = (
            _VERSION,
            self.upload_id,
            self.oid,
            self.size,
            self.part_size,
            self.expires_at,
            self.namespace,
        )
        return "|".join(str(field) for field in fields).encode("ascii")

    def sign(self, key: bytes) -> str:
        return hmac.new(key, self._message(), hashlib.sha256).hexdigest()

    def query(self, key: bytes) -> str:
        return (
            f"oid={self.oid}&size={self.size}&part_size={self.part_size}"
            f"&expires={self.expires_at}&namespace={self.namespace}&signature={self.sign(key)}"
        )


def new_grant(oid: str, size: int, part_size: int, ttl_s: int, namespace: str = "") -> UploadGrant:
    return UploadGrant(
        upload_id=secrets.token_hex(16),
        oid=oid,
        size=size,
        part_size=part_size,
        expires_at=int(time.time()) + ttl_s,
        namespace=namespace,
    )


def _well_formed(grant: UploadGrant, signature: str) -> bool:
    return bool(
        _HEX.fullmatch(grant.upload_id)
        and len(grant.upload_id) == 32
        and _HEX.fullmatch(grant.oid)
        and len(grant.oid) == 64
        and _HEX.fullmatch(signature)
        and len(signature) == 64
        and _NAMESPACE.fullmatch(grant.namespace) is not None
    )


def check_grant(key: bytes, grant: UploadGrant, signature: str) -> None:
    """Refuse (403) a forged, altered or expired upload URL."""
    if not _well_formed(grant, signature) or not hmac.compare_digest(grant.sign(key), signature):
        raise Forbidden(
            "this upload URL's signature does not match: it was altered or was not issued by "
            "this server; ask the LFS batch API (POST <repo>.git/info/lfs/objects/batch) for "
            "a new one"
        )
    if grant.expires_at < time.time():
        raise Forbidden(
            "this upload URL has expired (LORRY_UPLOAD_URL_TTL_S); start the upload again to "
            "get a new one"
        )


def upload_url_key(settings: Settings) -> bytes:
    """The signing key: ``LORRY_UPLOAD_URL_SECRET``, else a random key created once under
    the data directory (readable by its owner only)."""
    if settings.upload_url_secret:
        return settings.upload_url_secret.encode("utf-8")
    path = settings.home / _KEY_FILE
    try:
        return _read_or_create(path)
    except OSError as exc:
        raise StorageUnavailable(
            f"could not read or create the upload URL key {path}: {exc.strerror}; check that "
            "the data directory is writable, or set LORRY_UPLOAD_URL_SECRET"
        ) from exc


def _read_or_create(path: Path) -> bytes:
    if path.is_file():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f"{_KEY_FILE}.{secrets.token_hex(4)}")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_hex(32).encode("ascii"))
    try:
        os.link(staged, path)  # atomic: a concurrent first start keeps one key
    except FileExistsError:
        pass
    finally:
        staged.unlink()
    return path.read_bytes()
