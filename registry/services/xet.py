"""The Xet upload path of the Hub API: what ``hf_xet`` (huggingface_hub's default uploader)
sends, turned into ordinary, sha256-verified blobs.

1. ``xet-write-token`` (the caller's ``write`` scope on the repository, checked by the
   role matrix) answers a CAS URL under ``/api/xet/<ns>/<name>`` and a short-lived token
   signed for that repository only (HMAC, the key of ``registry.services.upload_urls``).
2. The client asks whether chunks are known (``GET .../v1/chunks/...``): always "no"
   (404); deduplicating against other uploads would tell a client what they hold.
3. Xorbs (``POST .../v1/xorbs/default/<hash>``) are verified while they stream in
   (``registry.services.xet_xorbs``): every chunk decompressed and hashed, the
   aggregated hash compared with the URL's, and the chunks kept (decompressed) with an
   index (``registry.storage.xorbs``: beside the blobs on S3, where every replica reads
   them; under ``<home>/xet/<ns>/<name>/`` with the local blob directory).
4. The shard (``POST .../v1/shards``) lists each file as terms (chunk ranges of
   xorbs). Each file is rebuilt by reading those xorbs' chunks into a scratch file,
   hashed on the way, compared with the sha256 the shard names, and only then put into
   the blob store (on the local store, a rename of that file; not referenced until a
   commit names it: what the Git LFS path does with an upload).
5. The commit names the file by that sha256 (``lfsFile``), like any LFS file.

Xorbs are kept after their files are built: hf_xet keeps the shards it uploaded for
three weeks (``MDB_SHARD_LOCAL_CACHE_EXPIRATION``, in a cache per CAS URL, so per
repository here) and, in a later upload of similar files, refers to their chunks instead
of sending them again. A shard that refers to a xorb renews its time; a xorb unused for
``XORB_KEEP_S`` is removed when the repository's next Xet token is issued.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import mmap
import os
import re
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
from sqlmodel import Session

from registry.config import Settings
from registry.errors import Forbidden, InvalidInput, StorageUnavailable, TooLarge
from registry.services.blob_claims import record_uploads
from registry.services.xet_format import FileEntry, read_shard_files
from registry.services.xet_xorbs import read_index, write_all
from registry.storage.base import BlobStore
from registry.storage.scratch import ScratchLock, new_file
from registry.storage.xorbs import LocalXorbs, XorbStore, open_xorb_store

logger = logging.getLogger(__name__)

MAX_SHARD_BYTES = 64 * 1024 * 1024
MAX_TERMS = 1_000_000
XORB_KEEP_S = 22 * 24 * 3600
"""A day longer than hf_xet keeps the shards that may refer to a xorb."""
_STAGED_KEEP_S = 3600
_WRITE_BYTES = 4 * 1024 * 1024
_TOKEN = re.compile(r"([0-9]{1,12})\.([0-9a-f]{64})")


def _sign(key: bytes, namespace: str, name: str, expires_at: int) -> str:
    message = f"xet|v1|{namespace}|{name}|{expires_at}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class XetToken:
    cas_url: str
    access_token: str
    expires_at: int


def issue_token(key: bytes, base_url: str, namespace: str, name: str, ttl_s: int) -> XetToken:
    """A token for the CAS routes of repository ``namespace/name`` only."""
    expires_at = int(time.time()) + ttl_s
    token = f"{expires_at}.{_sign(key, namespace, name, expires_at)}"
    return XetToken(f"{base_url}/api/xet/{namespace}/{name}", token, expires_at)


def check_token(key: bytes, namespace: str, name: str, token: str | None) -> None:
    """Refuse (403) a missing, forged, expired or other repository's token."""
    found = _TOKEN.fullmatch(token or "")
    if found is None or not hmac.compare_digest(
        _sign(key, namespace, name, int(found.group(1))), found.group(2)
    ):
        raise Forbidden(
            f"this Xet token is not valid for {namespace}/{name}: Xet storage takes the token "
            f"that GET /api/models/{namespace}/{name}/xet-write-token/<revision> issues for "
            "that repository (huggingface_hub fetches it)"
        )
    if int(found.group(1)) < time.time():
        raise Forbidden("this Xet token has expired; huggingface_hub fetches a new one")


def sweep_xorbs(xorbs: XorbStore, namespace: str, name: str) -> int:
    """Remove the repository's xorbs that no shard used for ``XORB_KEEP_S`` (and staging
    files that killed uploads left); how many xorbs."""
    return xorbs.sweep(namespace, name, XORB_KEEP_S)


@dataclass
class Spool:
    """A request body on disk (a locked scratch file) until it is kept or dropped."""

    path: Path
    lock: ScratchLock
    size: int = 0

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.lock.release()


async def spool_body(
    settings: Settings, chunks: AsyncIterator[bytes], limit: int, what: str
) -> Spool:
    """Write a streamed body to a scratch file, refusing one over ``limit`` bytes."""
    try:
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, path, lock = new_file(settings.tmp_dir, "upload-", ".xet")
    except OSError as exc:
        raise StorageUnavailable(f"could not create a spool file: {exc.strerror}") from exc
    spool = Spool(path, lock)
    buffer = bytearray()
    try:
        async for piece in chunks:
            spool.size += len(piece)
            if spool.size > limit:
                raise TooLarge(f"a {what} is larger than {limit} bytes; hf_xet sends smaller ones")
            buffer += piece
            if len(buffer) >= _WRITE_BYTES:
                await anyio.to_thread.run_sync(write_all, fd, bytes(buffer))
                buffer.clear()
        await anyio.to_thread.run_sync(write_all, fd, bytes(buffer))
    except BaseException:
        os.close(fd)
        spool.discard()
        raise
    os.close(fd)
    return spool


def _check(xorbs: XorbStore, namespace: str, name: str, entry: FileEntry, max_bytes: int) -> None:
    if entry.size > max_bytes:
        raise TooLarge(
            f"a file of {entry.size} bytes is larger than the server's limit of {max_bytes} "
            "bytes per file (LORRY_MAX_FILE_BYTES)"
        )
    used: set[str] = set()
    for term in entry.terms:
        chunks = read_index(xorbs, namespace, name, term.xorb)
        if term.xorb not in used:
            xorbs.touch(namespace, name, term.xorb)  # used: kept another XORB_KEEP_S
            used.add(term.xorb)
        if term.end > len(chunks):
            raise InvalidInput(
                f"the shard names chunks {term.start} to {term.end} of xorb {term.xorb}, "
                f"which has {len(chunks)}"
            )
        if sum(size for _, size, _ in chunks[term.start : term.end]) != term.size:
            raise InvalidInput(
                f"the shard says chunks {term.start} to {term.end} of xorb {term.xorb} hold "
                f"{term.size} bytes; they do not"
            )


def _ranges(
    xorbs: XorbStore, namespace: str, name: str, entry: FileEntry
) -> list[tuple[str, int, int]]:
    """Where the bytes of ``entry`` are: per term, its xorb, an offset in the xorb's
    chunks and a length (= the chunks' sizes, ``_check``)."""
    return [
        (term.xorb, read_index(xorbs, namespace, name, term.xorb)[term.start][0], term.size)
        for term in entry.terms
    ]


def _shorter(path: Path) -> InvalidInput:
    return InvalidInput(f"xorb {path.stem} is shorter than its index says")


def _hash_ranges(ranges: list[tuple[Path, int, int]]) -> str:
    """The sha256 of the ranges' bytes, hashed where the page cache holds them: mapped
    ``_WRITE_BYTES`` at a time (no copy into a buffer: ~0.1-0.4 s less CPU per GiB than
    ``readinto`` here; a window at a time keeps the mapped pages out of the RSS)."""
    hasher = hashlib.sha256()
    for path, offset, size in ranges:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size < offset + size:
                raise _shorter(path)
            end = offset + size
            start = offset - offset % mmap.ALLOCATIONGRANULARITY
            while start < end:
                length = min(_WRITE_BYTES, end - start)
                with mmap.mmap(
                    handle.fileno(), length, offset=start, access=mmap.ACCESS_READ
                ) as window:
                    with memoryview(window) as view:
                        hasher.update(view[max(offset - start, 0) :])
                start += length
    return hasher.hexdigest()


def _copy_ranges(fd: int, ranges: list[tuple[Path, int, int]]) -> None:
    """Append the ranges' bytes to ``fd`` (``sendfile``: copied in the kernel)."""
    for path, offset, size in ranges:
        with open(path, "rb", buffering=0) as handle:
            while size:
                sent = os.sendfile(fd, handle.fileno(), offset, size)
                if not sent:
                    raise _shorter(path)
                offset += sent
                size -= sent


def _read_ranges(
    xorbs: XorbStore, namespace: str, name: str, ranges: list[tuple[str, int, int]], fd: int | None
) -> str:
    """The sha256 of the ranges' bytes read from the xorb store (S3), appended to ``fd``
    unless it is ``None``."""
    hasher = hashlib.sha256()
    for xorb, offset, size in ranges:
        got = 0
        for piece in xorbs.read(namespace, name, xorb, offset, size):
            hasher.update(piece)
            if fd is not None:
                write_all(fd, piece)
            got += len(piece)
        if got != size:
            raise InvalidInput(f"xorb {xorb} is shorter than its index says")
    return hasher.hexdigest()


def _rebuild(
    settings: Settings,
    xorbs: XorbStore,
    namespace: str,
    name: str,
    entry: FileEntry,
    *,
    copy: bool,
) -> tuple[Spool | None, str]:
    """The file of ``entry`` in a scratch file (if ``copy``) and its sha256. On local
    disk the copy runs in a second thread beside the hash (both release the GIL): this is
    the part of a push that the client waits for after its last xorb. From S3 the bytes
    are read once, hashed and written on the way."""
    ranges = _ranges(xorbs, namespace, name, entry)
    local = xorbs if isinstance(xorbs, LocalXorbs) else None
    paths = [(local.chunks_path(namespace, name, x), o, n) for x, o, n in ranges] if local else []
    if not copy:
        if local:
            return None, _hash_ranges(paths)
        return None, _read_ranges(xorbs, namespace, name, ranges, None)
    fd, path, lock = new_file(settings.tmp_dir, "upload-", ".part")
    spool = Spool(path, lock)
    try:
        if not local:
            sha256 = _read_ranges(xorbs, namespace, name, ranges, fd)
        else:
            with ThreadPoolExecutor(1, thread_name_prefix="xet-rebuild") as pool:
                copied = pool.submit(_copy_ranges, fd, paths)
                sha256 = _hash_ranges(paths)
                copied.result()
    except BaseException:
        os.close(fd)
        spool.discard()
        raise
    os.close(fd)
    return spool, sha256


def store_shard(
    session: Session, store: BlobStore, settings: Settings, namespace: str, name: str, spool: Spool
) -> list[str]:
    """Build every file that the spooled shard describes and put it into the blob store
    when it hashes to the sha256 the shard names; the sha256s stored, which ``namespace``
    now holds (``registry.services.blob_claims``): their bytes came in as its xorbs."""
    xorbs = open_xorb_store(settings, store)
    try:
        with spool.path.open("rb") as handle:
            entries = read_shard_files(handle, MAX_TERMS)
    finally:
        spool.discard()
    for entry in entries:
        _check(xorbs, namespace, name, entry, settings.max_file_bytes)
    stored = []
    for entry in entries:
        # A blob the store holds already: the chunks are only hashed (the namespace must
        # have sent its bytes to hold it), not copied.
        known = entry.sha256 is not None and store.exists(entry.sha256)
        built, sha256 = _rebuild(settings, xorbs, namespace, name, entry, copy=not known)
        try:
            if entry.sha256 is not None and entry.sha256 != sha256:
                raise InvalidInput(
                    f"the file {entry.file_hash} of the shard hashes to sha256:{sha256}, not "
                    f"sha256:{entry.sha256} as the shard says; upload it again"
                )
            if built is not None and not store.exists(sha256):
                store.put_file(built.path, sha256)
            record_uploads(session, [namespace], sha256)
            stored.append(sha256)
        finally:
            if built is not None:
                built.discard()
    logger.info("xet: %s/%s: stored %d file(s) from a shard", namespace, name, len(stored))
    return stored
