"""The audit log as a hash chain: appending events under a lock, and verifying the chain.

Every event stores ``prev_hash`` (the hash of the event before it, or
``GENESIS_HASH`` for the first) and ``hash`` = sha256 of a canonical JSON
serialization of its recorded fields plus ``prev_hash``. The single row of
``audit_chain_head`` holds the hash and id of the newest event; appending locks
that row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the write
transaction already holds the database's write lock), so concurrent writers
queue and the chain never forks.

``verify_chain`` walks the events in id order and reports the first one that
was edited (its content no longer matches its hash), removed (an event links to
a hash that no longer exists, or the head names a newer event than the last
one), reordered (an event links to an event that now comes after it) or
inserted (events beyond the head, written to the table directly).

What it proves, and what not: an edit, deletion or reordering of rows by
someone who does not recompute every later hash and the head is detected.
Someone with write access to the database can rewrite the whole chain
consistently; anchor the head hash outside the database (print it with
``lorry audit verify`` and keep it elsewhere) to detect that too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from registry.tables import AuditChainHead, AuditEvent

GENESIS_HASH = "0" * 64
HEAD_ROW_ID = 1
HASHED_FIELDS = (
    "at",
    "actor",
    "action",
    "repository",
    "target",
    "before",
    "after",
    "request_id",
)


def _timestamp(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


def canonical_event(fields: Mapping[str, Any], prev_hash: str) -> bytes:
    """The bytes that an event's hash covers: its recorded fields and the previous hash."""
    document = {name: fields.get(name) for name in HASHED_FIELDS}
    document["at"] = _timestamp(document["at"])
    document["prev_hash"] = prev_hash
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def event_hash(fields: Mapping[str, Any], prev_hash: str) -> str:
    return hashlib.sha256(canonical_event(fields, prev_hash)).hexdigest()


def _fields(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in HASHED_FIELDS}


def _lock_head(session: Session) -> AuditChainHead:
    """The head row, locked; created (``ON CONFLICT DO NOTHING``) before the first event."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(AuditChainHead)
        .values(id=HEAD_ROW_ID, last_event_id=None, last_hash=GENESIS_HASH)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    return session.exec(
        select(AuditChainHead)
        .where(AuditChainHead.id == HEAD_ROW_ID)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


_PENDING = "lorry_audit_pending"


def defer_event(session: Session, event: AuditEvent) -> None:
    """Queue ``event``; it is chained and inserted when the session commits.

    Chaining at commit time takes the chain head's lock as the last lock of
    every transaction, so it cannot take part in a lock cycle with the row
    locks that the change itself takes (repository, alias rows).
    """
    session.info.setdefault(_PENDING, []).append(event)


@sa_event.listens_for(Session, "before_commit")
def _chain_pending(session: Session) -> None:
    pending: list[AuditEvent] = session.info.pop(_PENDING, [])
    for queued in pending:
        append_event(session, queued)


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, _previous_transaction: Any) -> None:
    session.info.pop(_PENDING, None)


def append_event(session: Session, event: AuditEvent) -> AuditEvent:
    """Chain ``event`` to the newest event and insert it, inside the caller's transaction.

    The head row stays locked until the caller's transaction ends, so the
    events of concurrent transactions are chained one after the other, in
    the order of their ids.
    """
    head = _lock_head(session)
    event.prev_hash = head.last_hash
    event.hash = event_hash(_fields(event), head.last_hash)
    session.add(event)
    session.flush()
    head.last_event_id = event.id
    head.last_hash = event.hash
    session.add(head)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainProblem:
    """The first spot where the chain breaks."""

    kind: str
    """``edited``, ``removed``, ``reordered`` or ``inserted``."""
    event_id: int | None
    """The event at the spot (``None``: the end of the log)."""
    message: str


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    head_hash: str
    head_event_id: int | None
    problem: ChainProblem | None


def verify_chain(session: Session, *, batch: int = 1000) -> ChainReport:
    """Walk every event, oldest first, and report the first broken link (or none).

    Reads the head and the events in one snapshot (``REPEATABLE READ`` on
    PostgreSQL; an SQLite read transaction is one already), so events that
    concurrent writers append do not look like tampering.
    """
    if session.in_transaction():
        session.rollback()
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    try:
        return _verify(session, batch)
    finally:
        session.rollback()


def _verify(session: Session, batch: int) -> ChainReport:
    head = session.get(AuditChainHead, HEAD_ROW_ID)
    known: dict[str, int] = {}
    previous_hash = GENESIS_HASH
    previous_id: int | None = None
    count = 0
    problem: ChainProblem | None = None
    last_id = 0
    rows: list[AuditEvent] = []
    ordered: list[tuple[int, str | None, str | None, str]] = []
    while True:
        rows = list(
            session.exec(
                select(AuditEvent)
                .where(col(AuditEvent.id) > last_id)
                .order_by(col(AuditEvent.id))
                .limit(batch)
            ).all()
        )
        if not rows:
            break
        for event in rows:
            assert event.id is not None
            recomputed = event_hash(_fields(event), event.prev_hash or "")
            ordered.append((event.id, event.prev_hash, event.hash, recomputed))
            if event.hash:
                known[event.hash] = event.id
        last_id = rows[-1].id or last_id
        session.expunge_all()
    for event_id, prev_hash, stored_hash, recomputed in ordered:
        count += 1
        if stored_hash != recomputed:
            problem = ChainProblem(
                "edited",
                event_id,
                f"audit event {event_id} was edited: its content no longer matches its hash",
            )
            break
        if prev_hash != previous_hash:
            problem = _link_problem(event_id, previous_id, prev_hash, known)
            break
        previous_hash = stored_hash
        previous_id = event_id
    if problem is None:
        head_hash = head.last_hash if head is not None else GENESIS_HASH
        head_id = head.last_event_id if head is not None else None
        if head_id is not None and previous_id is not None and previous_id > head_id:
            problem = ChainProblem(
                "inserted",
                next(event_id for event_id, *_ in ordered if event_id > head_id),
                f"audit events after event {head_id} were inserted without the chain head "
                "knowing them: they were written to the database directly",
            )
        elif head_hash != previous_hash or head_id != previous_id:
            after = f"after event {previous_id}" if previous_id is not None else "at the start"
            problem = ChainProblem(
                "removed",
                None,
                f"audit events were removed {after}: the chain head names event {head_id} "
                f"(hash {head_hash[:16]}...) but the log ends at event {previous_id}",
            )
    return ChainReport(
        ok=problem is None,
        events=count,
        head_hash=head.last_hash if head is not None else GENESIS_HASH,
        head_event_id=head.last_event_id if head is not None else None,
        problem=problem,
    )


def _link_problem(
    event_id: int, previous_id: int | None, prev_hash: str | None, known: dict[str, int]
) -> ChainProblem:
    linked = known.get(prev_hash or "")
    if linked is not None and linked > event_id:
        return ChainProblem(
            "reordered",
            event_id,
            f"audit event {event_id} was reordered: it follows event {linked}, "
            f"which now comes after it",
        )
    if linked is not None:
        return ChainProblem(
            "removed",
            event_id,
            f"audit events between {linked} and {event_id} were removed",
        )
    after = f"event {previous_id}" if previous_id is not None else "the start of the log"
    return ChainProblem(
        "removed",
        event_id,
        f"the chain breaks between {after} and event {event_id}: event {event_id} follows an "
        "event that is no longer in the log (events were removed there, or the event before "
        "it was edited and its hash recomputed)",
    )
