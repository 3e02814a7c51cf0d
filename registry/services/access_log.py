"""The access log: who downloaded which file of which version, written in batches.

Downloads are reads; they must not queue behind the audit chain's write lock.
A served file becomes a record in memory (``AccessLog.record``, no I/O on the
request's path); a flusher thread writes the records gathered so far every
``access_log_flush_s`` (default 1 s) and at shutdown, in one transaction that
also adds them to ``download_counts``. A process killed with SIGKILL loses at
most the records of its last interval; mutations never go through here, so
none is lost. While the database is unreachable the records stay in memory (up
to ``access_log_max_pending``, oldest dropped first with a warning) and are
written once it answers again.

The table is append-only, like the audit log, but not hash-chained: it says
what was read, not what changed.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Engine, bindparam, func, insert
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from registry.db import dialect_insert, write_transaction
from registry.schemas.access import AccessList, AccessRecordOut
from registry.services.visibility import EVERYTHING, Visibility
from registry.tables import AccessRecord, DownloadCount

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pull:
    """One file handed out: what an access-log row holds."""

    at: datetime
    actor: str
    repository: str
    version: int
    digest: str
    path: str
    sha256: str
    size: int
    revision: str
    via: str
    redirect: bool
    byte_range: str | None
    address: str | None
    forwarded_for: str | None
    user_agent: str | None
    request_id: str | None


def write_batch(session: Session, pulls: list[Pull]) -> None:
    """Insert ``pulls`` and add them to the per-version counts, in one transaction."""
    if not pulls:
        return
    counts = Counter((pull.repository, pull.version) for pull in pulls)
    with write_transaction(session, begin=False):
        session.execute(insert(AccessRecord), [asdict(pull) for pull in pulls])
        for (repository, version), added in sorted(counts.items()):
            statement = dialect_insert(session, DownloadCount).values(
                repository=repository, version=version, downloads=added
            )
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["repository", "version"],
                    set_={"downloads": col(DownloadCount.downloads) + added},
                )
            )


class AccessLog:
    """Records in memory, flushed to the database by a thread of this process."""

    def __init__(self, engine: Engine, *, flush_s: float = 1.0, max_pending: int = 100_000):
        self._engine = engine
        self._flush_s = flush_s
        self._max_pending = max_pending
        self._pending: list[Pull] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._dropped = 0

    def record(self, pull: Pull) -> None:
        """Queue ``pull``; it is written within ``flush_s`` (no I/O here)."""
        with self._lock:
            self._pending.append(pull)
            excess = len(self._pending) - self._max_pending
            if excess > 0:
                del self._pending[:excess]
                self._dropped += excess

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lorry-access-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write what is left (one last try)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def flush(self) -> int:
        """Write the queued records now; returns how many were written (0 on failure,
        when they stay queued for the next try)."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, []
                dropped, self._dropped = self._dropped, 0
            if dropped:
                logger.warning(
                    "access log: %d download records dropped while the database was "
                    "unreachable (more than %d waiting)",
                    dropped,
                    self._max_pending,
                )
            if not batch:
                return 0
            try:
                with Session(self._engine) as session:
                    write_batch(session, batch)
            except SQLAlchemyError as exc:
                logger.warning(
                    "access log: could not write %d records, kept for the next try: %s",
                    len(batch),
                    exc.__class__.__name__,
                )
                with self._lock:
                    self._pending[:0] = batch
                    excess = len(self._pending) - self._max_pending
                    if excess > 0:
                        del self._pending[:excess]
                        self._dropped += excess
                return 0
            return len(batch)

    def _run(self) -> None:
        while not self._stopping.wait(self._flush_s):
            try:
                self.flush()
            except Exception:
                logger.exception("access log: flush failed")


def pull_out(row: AccessRecord) -> AccessRecordOut:
    assert row.id is not None
    return AccessRecordOut(
        id=row.id,
        at=row.at,
        actor=row.actor,
        repository=row.repository,
        version=row.version,
        digest=row.digest,
        path=row.path,
        sha256=row.sha256,
        size=row.size,
        revision=row.revision,
        via=row.via,
        redirect=row.redirect,
        range=row.byte_range,
        address=row.address,
        forwarded_for=row.forwarded_for,
        user_agent=row.user_agent,
        request_id=row.request_id,
    )


def query_access(
    session: Session,
    *,
    repository: str | None = None,
    version: int | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    visible: Visibility = EVERYTHING,
) -> AccessList:
    """Records matching every given filter, newest first; ``until`` is exclusive.
    ``visible`` keeps only records of repositories the caller may read."""
    conditions = [visible.where(col(AccessRecord.repository), repository=True)]
    if repository is not None:
        conditions.append(col(AccessRecord.repository) == repository)
    if version is not None:
        conditions.append(col(AccessRecord.version) == version)
    if actor is not None:
        conditions.append(col(AccessRecord.actor) == actor)
    if since is not None:
        conditions.append(col(AccessRecord.at) >= since)
    if until is not None:
        conditions.append(col(AccessRecord.at) < until)
    total = session.exec(select(func.count()).select_from(AccessRecord).where(*conditions)).one()
    rows = session.exec(
        select(AccessRecord)
        .where(*conditions)
        .order_by(col(AccessRecord.id).desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return AccessList(items=[pull_out(row) for row in rows], total=total)


_VERSION_DOWNLOADS = select(col(DownloadCount.downloads)).where(
    col(DownloadCount.repository) == bindparam("repository"),
    col(DownloadCount.version) == bindparam("version"),
)


def version_downloads(session: Session, repository: str, version: int) -> int:
    found = session.connection().execute(
        _VERSION_DOWNLOADS, {"repository": repository, "version": version}
    )
    return int(found.scalar() or 0)


def repository_downloads(session: Session, repository: str) -> int:
    total = session.exec(
        select(func.coalesce(func.sum(col(DownloadCount.downloads)), 0)).where(
            col(DownloadCount.repository) == repository
        )
    ).one()
    return int(total)
