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
consistently; signed checkpoints of the head kept outside the database
(``registry.services.audit_checkpoints``) detect that too: ``verify_chain``
takes them as ``anchors``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlmodel import Session, col, select

from registry.db import insert_or_ignore
from registry.services.audit_anchors import Anchor, AnchorCheck, AnchorProblem, Checkpoint
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
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
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
    head = {"id": HEAD_ROW_ID, "last_event_id": None, "last_hash": GENESIS_HASH}
    session.execute(insert_or_ignore(session, AuditChainHead, head, unique=["id"]))
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
    """``edited``, ``removed``, ``reordered`` or ``inserted``; ``truncated`` or ``rewritten``
    when the log no longer extends a checkpoint (``verify_extension``)."""
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
    anchor_problems: tuple[AnchorProblem, ...] = ()
    """Checkpoints that the database contradicts (``registry.services.audit_anchors``)."""
    confirmed: tuple[Anchor, ...] = ()
    """Checkpoints whose event the database still has, with the same hash."""


@dataclass(frozen=True)
class _Start:
    """Where a walk starts: after ``event_id`` (hash ``hash``, the ``count``-th event)."""

    event_id: int = 0
    hash: str = GENESIS_HASH
    count: int = 0


def verify_chain(
    session: Session, *, batch: int = 1000, anchors: Iterable[Anchor] = ()
) -> ChainReport:
    """Walk every event, oldest first, and report the first broken link (or none), and every
    checkpoint in ``anchors`` that the log contradicts.

    Streams: holds one batch of events at a time, whatever the size of the log.
    Reads the head and the events in one snapshot (``REPEATABLE READ`` on
    PostgreSQL; an SQLite read transaction is one already), so events that
    concurrent writers append do not look like tampering.
    """
    with _snapshot(session):
        return _verify(session, batch, AnchorCheck(anchors), _Start())


def verify_extension(session: Session, previous: Checkpoint, *, batch: int = 1000) -> ChainReport:
    """Check that the log still extends ``previous`` (its event has its hash) and that every
    event after it links up to the head: what a new checkpoint may vouch for. Walks only the
    events after ``previous``; ``events`` counts the whole log."""
    with _snapshot(session):
        stored = session.exec(
            select(AuditEvent.hash).where(col(AuditEvent.id) == previous.event_id)
        ).first()
        if stored != previous.head_hash:
            report = _verify(session, batch, AnchorCheck(()), _Start())
            gone = "is gone" if stored is None else f"now has hash {stored[:16]}..."
            problem = ChainProblem(
                "truncated" if stored is None else "rewritten",
                previous.event_id,
                f"event {previous.event_id} of the previous checkpoint {gone}: the log no "
                "longer extends what was signed",
            )
            return replace(report, ok=False, problem=problem)
        start = _Start(previous.event_id, previous.head_hash, previous.size)
        return _verify(session, batch, AnchorCheck(()), start)


@contextmanager
def _snapshot(session: Session) -> Iterator[None]:
    if session.in_transaction():
        session.rollback()
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    try:
        yield
    finally:
        session.rollback()


def _events(session: Session, batch: int, after_id: int) -> Iterator[AuditEvent]:
    """Events after ``after_id`` in id order, ``batch`` rows per query, none kept."""
    last_id = after_id
    while True:
        rows = session.exec(
            select(AuditEvent)
            .where(col(AuditEvent.id) > last_id)
            .order_by(col(AuditEvent.id))
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id or last_id
        session.expunge_all()


def _verify(session: Session, batch: int, check: AnchorCheck, start: _Start) -> ChainReport:
    head = session.get(AuditChainHead, HEAD_ROW_ID)
    head_hash = head.last_hash if head is not None else GENESIS_HASH
    head_id = head.last_event_id if head is not None else None
    previous_hash = start.hash
    previous_id: int | None = start.event_id or None
    count = start.count
    problem: ChainProblem | None = None
    beyond_head: int | None = None
    last_walked = previous_id
    for event in _events(session, batch, start.event_id):
        assert event.id is not None
        count += 1
        last_walked = event.id
        check.see(event.id, count, event.hash)
        if beyond_head is None and head_id is not None and event.id > head_id:
            beyond_head = event.id
        if problem is not None:
            continue
        if event.hash != event_hash(_fields(event), event.prev_hash or ""):
            problem = ChainProblem(
                "edited",
                event.id,
                f"audit event {event.id} was edited: its content no longer matches its hash",
            )
        elif event.prev_hash != previous_hash:
            problem = _link_problem(session, event.id, previous_id, event.prev_hash)
        else:
            previous_hash = event.hash
            previous_id = event.id
    check.finish(last_walked)
    if problem is None:
        problem = _end_problem(head_id, head_hash, previous_id, previous_hash, beyond_head)
    return ChainReport(
        ok=problem is None and not check.problems,
        events=count,
        head_hash=head_hash,
        head_event_id=head_id,
        problem=problem,
        anchor_problems=tuple(check.problems),
        confirmed=tuple(check.confirmed),
    )


def _end_problem(
    head_id: int | None,
    head_hash: str,
    last_id: int | None,
    last_hash: str,
    beyond_head: int | None,
) -> ChainProblem | None:
    if beyond_head is not None:
        return ChainProblem(
            "inserted",
            beyond_head,
            f"audit events after event {head_id} were inserted without the chain head "
            "knowing them: they were written to the database directly",
        )
    if head_hash != last_hash or head_id != last_id:
        after = f"after event {last_id}" if last_id is not None else "at the start"
        return ChainProblem(
            "removed",
            None,
            f"audit events were removed {after}: the chain head names event {head_id} "
            f"(hash {head_hash[:16]}...) but the log ends at event {last_id}",
        )
    return None


def _link_problem(
    session: Session, event_id: int, previous_id: int | None, prev_hash: str | None
) -> ChainProblem:
    # Only on a broken link: one lookup of the event it links to, instead of an index of
    # every hash held in memory during the walk.
    linked = session.exec(
        select(AuditEvent.id).where(col(AuditEvent.hash) == (prev_hash or "")).limit(1)
    ).first()
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
