"""Tombstones: what reads of a deleted version or repository answer instead of a plain 404.

A deleted version (or every version of a deleted repository) leaves one row in
``tombstones``: its repository's name, number and digest, who deleted it, when and why
(``registry.services.lifecycle`` writes them). The lookups here run only on the miss path
of a read, so they cost a found version nothing.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

from registry.tables import Tombstone


def tombstone_message(what: str, row: Tombstone) -> str:
    when = row.deleted_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"{what} was deleted on {when} by {row.deleted_by}: {row.reason}"


def version_tombstone(session: Session, repository: str, kind: str, value: str) -> Tombstone | None:
    """The tombstone of the version of ``repository`` that a parsed reference names
    (``number``, ``digest`` or ``commit``), if it was deleted."""
    query = select(Tombstone).where(
        Tombstone.repository == repository, col(Tombstone.version).is_not(None)
    )
    if kind == "number":
        query = query.where(Tombstone.version == int(value))
    elif kind == "digest":
        query = query.where(Tombstone.digest == value)
    elif kind == "commit":
        query = query.where(col(Tombstone.digest).startswith(value))
    else:
        return None
    row: Tombstone | None = session.exec(
        query.order_by(col(Tombstone.deleted_at).desc()).limit(1)
    ).first()
    return row


def repository_tombstone(session: Session, repository: str) -> Tombstone | None:
    row: Tombstone | None = session.exec(
        select(Tombstone)
        .where(Tombstone.repository == repository, col(Tombstone.version).is_(None))
        .order_by(col(Tombstone.deleted_at).desc())
        .limit(1)
    ).first()
    return row


def highest_deleted_number(session: Session, repository: str) -> int | None:
    """The highest number a deleted version of ``repository`` had: numbers are never
    given twice, so the next version is numbered above it."""
    number: int | None = session.exec(
        select(func.max(col(Tombstone.version))).where(Tombstone.repository == repository)
    ).one()
    return number
