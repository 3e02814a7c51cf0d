"""Scratch files and directories under ``LORRY_HOME/tmp`` that a crash cannot leak.

Uploads spool to ``upload-*.part``, generated model cards to ``card-*``, jobs work in
``job-*`` and ``export-*`` directories. A process killed with ``kill -9`` leaves them
behind (an upload's spool file is preallocated to the full declared size). So each
entry is locked (``flock``, exclusive) by its owner from birth to removal: it is made
under a ``.new-`` name, locked, then renamed to its real name, so that no entry with a
real name is ever unlocked while its owner lives. The kernel drops the lock when the
owner dies, however it dies. ``leftovers`` finds the entries whose lock it can take
without waiting (their owner is gone), and ``reclaim`` removes them while holding that
lock; it never touches an entry that a live upload or job holds, in this process or
another (``flock`` locks belong to open files, not to processes). A ``.new-`` entry
lives for microseconds; one older than ``_STAGING_AGE_S`` is a crash's, and is removed.

POSIX only (``fcntl``); flock is unreliable on some network filesystems, so
``LORRY_HOME`` should be a local disk.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from registry.errors import StorageUnavailable

logger = logging.getLogger(__name__)

PREFIXES = ("upload-", "card-", "job-", "export-")
"""The names of the entries that Lorry's scratch directory holds."""
_STAGING = ".new-"
_STAGING_AGE_S = 600.0


@dataclass(frozen=True)
class Leftover:
    name: str
    bytes: int


class ScratchLock:
    """The owner's lock on one scratch entry; ``release`` once the entry is gone."""

    def __init__(self, path: Path) -> None:
        flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
        self._fd: int | None = os.open(path, flags)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _adopt(staged: Path, final_name: str) -> tuple[Path, ScratchLock]:
    lock = ScratchLock(staged)
    path = staged.with_name(final_name)
    os.rename(staged, path)
    return path, lock


def new_file(directory: Path, prefix: str, suffix: str = "") -> tuple[int, Path, ScratchLock]:
    """A new empty file ``<prefix>*<suffix>`` opened for writing, and its owner's lock."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, staged = tempfile.mkstemp(dir=directory, prefix=f"{_STAGING}{prefix}", suffix=suffix)
    try:
        path, lock = _adopt(Path(staged), Path(staged).name.removeprefix(_STAGING))
    except BaseException:
        os.close(fd)
        Path(staged).unlink(missing_ok=True)
        raise
    return fd, path, lock


@contextmanager
def scratch_directory(directory: Path, prefix: str) -> Iterator[Path]:
    """A new directory ``<prefix>*``, locked while the block runs and removed after it."""
    directory.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=directory, prefix=f"{_STAGING}{prefix}"))
    try:
        path, lock = _adopt(staged, staged.name.removeprefix(_STAGING))
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        lock.release()


def _size(path: Path) -> int:
    if not path.is_dir():
        return path.lstat().st_blocks * 512
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_blocks * 512
            except FileNotFoundError:
                continue
    return total


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _try_lock(path: Path) -> int | None:
    """An fd holding the entry's lock, or ``None`` when its owner holds it (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _abandoned(directory: Path, *, remove: bool) -> list[Leftover]:
    if not directory.is_dir():
        return []
    found: list[Leftover] = []
    now = time.time()
    for path in sorted(directory.iterdir()):
        name = path.name
        if name.startswith(_STAGING) and name.removeprefix(_STAGING).startswith(PREFIXES):
            try:
                if now - path.lstat().st_mtime < _STAGING_AGE_S:
                    continue
            except FileNotFoundError:
                continue
        elif not name.startswith(PREFIXES):
            continue
        fd = _try_lock(path)
        if fd is None:
            continue
        try:
            found.append(Leftover(name=name, bytes=_size(path)))
            if remove:
                _remove(path)
        finally:
            os.close(fd)
    return found


def leftovers(directory: Path) -> list[Leftover]:
    """Scratch entries that no live owner holds (what ``reclaim`` would remove)."""
    return _abandoned(directory, remove=False)


def reclaim(directory: Path) -> list[Leftover]:
    """Remove the scratch entries that no live owner holds; returns what was removed."""
    removed = _abandoned(directory, remove=True)
    if removed:
        logger.warning(
            "removed %d scratch entr%s (%d bytes) that a crashed upload or job left in %s",
            len(removed),
            "y" if len(removed) == 1 else "ies",
            sum(item.bytes for item in removed),
            directory,
        )
    return removed


@contextmanager
def disk_errors(action: str) -> Iterator[None]:
    """Turn an ``OSError`` (a full disk, a read-only or failing filesystem) into
    ``StorageUnavailable`` (503) with a message that names no path of the server."""
    try:
        yield
    except OSError as exc:
        raise storage_unavailable(action, exc) from exc


def storage_unavailable(action: str, exc: OSError) -> StorageUnavailable:
    """``disk_errors``' translation of one error."""
    reason = exc.strerror or type(exc).__name__
    return StorageUnavailable(
        f"could not {action}: {reason}; the server's storage is full or failing. "
        "Nothing was changed: free space (or fix the storage) and try again"
    )
