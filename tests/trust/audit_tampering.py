"""What someone who holds the database can do to the audit log, done with plain SQL/ORM."""

from __future__ import annotations

from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col, select

from registry.services.audit_chain import GENESIS_HASH, HASHED_FIELDS, event_hash
from registry.tables import AuditChainHead, AuditEvent


def truncate(engine: Engine, keep_through: int) -> None:
    """Delete every event after ``keep_through`` and move the head back to it."""
    with Session(engine) as session:
        kept = session.get(AuditEvent, keep_through)
        assert kept is not None
        session.exec(delete(AuditEvent).where(col(AuditEvent.id) > keep_through))  # type: ignore[call-overload]
        session.exec(
            update(AuditChainHead).values(last_event_id=kept.id, last_hash=kept.hash)  # type: ignore[call-overload]
        )
        session.commit()


def rewrite(engine: Engine, event_id: int, **changes: object) -> None:
    """Change an event and recompute its hash, every later hash and the head: a chain that
    verifies on its own."""
    with Session(engine) as session:
        events = session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()
        previous = GENESIS_HASH
        for event in events:
            if event.id == event_id:
                for name, value in changes.items():
                    setattr(event, name, value)
            event.prev_hash = previous
            event.hash = event_hash({n: getattr(event, n) for n in HASHED_FIELDS}, previous)
            previous = event.hash
            session.add(event)
        session.exec(
            update(AuditChainHead).values(last_event_id=events[-1].id, last_hash=previous)  # type: ignore[call-overload]
        )
        session.commit()


def event_ids(engine: Engine) -> list[int]:
    with Session(engine) as session:
        return [i for i in session.exec(select(AuditEvent.id).order_by(col(AuditEvent.id))) if i]
