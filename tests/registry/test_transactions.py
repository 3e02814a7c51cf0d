"""``write_transaction``: the block commits as a whole or not at all; ``insert_or_ignore``
keeps rows that exist. On both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from registry.config import Settings
from registry.db import create_engine_for, insert_or_ignore, write_transaction
from registry.tables import Blob, utcnow


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = create_engine_for(settings)
    yield engine
    engine.dispose()


def _stored(engine: Engine) -> list[str]:
    """The blob rows another connection sees: what was committed."""
    with Session(engine) as session:
        return list(session.exec(select(Blob.sha256).order_by(col(Blob.sha256))).all())


def _blob(char: str) -> Blob:
    return Blob(sha256=char * 64, size=1, created_at=utcnow())


def test_write_transaction_commits_the_block_at_its_end(engine: Engine) -> None:
    with Session(engine) as session:
        with write_transaction(session):
            session.add(_blob("a"))
            session.flush()
            assert _stored(engine) == []
        assert not session.in_transaction()
    assert _stored(engine) == ["a" * 64]


@pytest.mark.parametrize("error", [ValueError("bad input"), KeyboardInterrupt()])
def test_write_transaction_rolls_back_and_reraises_any_exception(
    engine: Engine, error: BaseException
) -> None:
    with Session(engine) as session:
        with pytest.raises(type(error)) as raised:
            with write_transaction(session):
                session.add(_blob("a"))
                session.flush()
                raise error
        assert raised.value is error
        assert not session.in_transaction()
        with write_transaction(session):
            session.add(_blob("b"))
    assert _stored(engine) == ["b" * 64]


def test_write_transaction_rolls_back_a_commit_that_fails(engine: Engine) -> None:
    with Session(engine) as session:
        with write_transaction(session):
            session.add(_blob("a"))
    with Session(engine) as session:
        with pytest.raises(IntegrityError):
            with write_transaction(session):
                session.add(_blob("b"))
                session.add(_blob("a"))
        assert not session.in_transaction()
    assert _stored(engine) == ["a" * 64]


def test_write_transaction_block_may_roll_back_to_leave_early(engine: Engine) -> None:
    def claim(session: Session, char: str) -> bool:
        with write_transaction(session):
            session.add(_blob(char))
            session.flush()
            if char == "a":
                session.rollback()
                return False
        return True

    with Session(engine) as session:
        assert claim(session, "a") is False
        assert claim(session, "b") is True
    assert _stored(engine) == ["b" * 64]


def test_insert_or_ignore_keeps_existing_rows_and_returns_only_the_new_ones(engine: Engine) -> None:
    def row(char: str, size: int) -> dict[str, object]:
        return {"sha256": char * 64, "size": size, "created_at": utcnow()}

    def insert(session: Session, rows: dict[str, object] | list[dict[str, object]]) -> list[str]:
        statement = insert_or_ignore(session, Blob, rows, unique=["sha256"])
        return list(session.execute(statement.returning(col(Blob.sha256))).scalars())

    with Session(engine) as session:
        with write_transaction(session):
            assert insert(session, row("a", 1)) == ["a" * 64]
            assert insert(session, row("a", 2)) == []
            assert insert(session, [row("a", 3), row("b", 4)]) == ["b" * 64]
    with Session(engine) as session:
        sizes = dict(session.exec(select(Blob.sha256, Blob.size)).all())
    assert sizes == {"a" * 64: 1, "b" * 64: 4}
