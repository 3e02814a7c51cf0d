"""Engines, sessions and migrations of the metadata database (SQLite or PostgreSQL)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel

import migrations
from registry.config import Settings
from registry.errors import DatabaseUnavailable, NotMigrated

logger = logging.getLogger(__name__)

UPGRADE_COMMAND = "lorry db upgrade"
_IMMEDIATE = "lorry_sqlite_immediate"


def create_engine_for(settings: Settings) -> Engine:
    """An engine for the configured database; nothing connects until first use.

    SQLite runs in WAL mode with a busy timeout, and SQLAlchemy (not the
    ``sqlite3`` module) emits ``BEGIN`` so that writers can take the write lock
    up front (``BEGIN IMMEDIATE``, see ``begin_write``).
    """
    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_sqlite(connection: Any) -> None:
        # On the DBAPI connection: through ``exec_driver_sql`` a BEGIN cost as much CPU as
        # the one-row read that follows it (measured, ``bench/load.py``).
        begin = "BEGIN IMMEDIATE" if connection.get_execution_options().get(_IMMEDIATE) else "BEGIN"
        connection.connection.dbapi_connection.execute(begin)

    return engine


def begin_write(session: Session) -> None:
    """Start the session's transaction as a writer.

    On SQLite this takes the database write lock at ``BEGIN`` so that
    concurrent writers queue (busy timeout) instead of failing when a read
    turns into a write; on PostgreSQL row locks (``FOR UPDATE``) do the work
    and this is a plain ``BEGIN``. Call it before the session's first query.
    """
    if session.in_transaction():
        session.commit()
    session.connection(execution_options={_IMMEDIATE: True})


@contextmanager
def write_transaction(session: Session, *, begin: bool = True) -> Iterator[None]:
    """Run the block as one write transaction: ``begin_write``, the block, ``commit``.

    Any exception, from the block, the commit or ``begin_write`` (``BaseException``
    too: a cancelled request, a worker stopping), rolls the transaction back and is
    re-raised as it is. A block may roll back itself to leave early having written
    nothing; the commit at its end then has nothing to do. ``begin=False`` leaves
    starting the transaction to the block: a block that writes with its first
    statement, or that calls ``begin_write`` itself.
    """
    try:
        if begin:
            begin_write(session)
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


def dialect_insert(session: Session, table: type[SQLModel]) -> postgresql.Insert | sqlite.Insert:
    """An ``INSERT`` into ``table`` in the session's dialect (PostgreSQL or SQLite), which
    knows ``ON CONFLICT``."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    return insert(table)


def insert_or_ignore(
    session: Session,
    table: type[SQLModel],
    values: dict[str, Any] | list[dict[str, Any]],
    *,
    unique: Sequence[str],
) -> postgresql.Insert | sqlite.Insert:
    """``INSERT ... ON CONFLICT (unique) DO NOTHING``: a row whose ``unique`` columns
    exist already is kept as it is. Add ``.returning(...)`` to learn which were inserted."""
    return (
        dialect_insert(session, table)
        .values(values)
        .on_conflict_do_nothing(index_elements=list(unique))
    )


def alembic_config() -> Config:
    """Alembic configuration built in code, so migrations run from an installed package."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to the database {_display_url(engine)}: {exc.__class__.__name__}: "
            f"{exc}; check LORRY_DATABASE_URL and that the server is running"
        ) from exc


def ensure_migrated(engine: Engine) -> None:
    """Raise ``NotMigrated`` (naming the command that fixes it) unless the schema is at head."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        state = "has no Lorry schema" if current is None else f"is at revision {current}"
        raise NotMigrated(
            f"the database {_display_url(engine)} {state} but this Lorry needs revision {head}; "
            f"run `{UPGRADE_COMMAND}` (with the same LORRY_DATABASE_URL) to migrate it"
        )


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Migrate the configured database to ``revision`` (default: the newest)."""
    engine = create_engine_for(settings)
    try:
        upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(
            f"migrating {_display_url(engine)} failed: {exc.__class__.__name__}: {exc}"
        ) from exc
    logger.info("database %s migrated to %s", _display_url(engine), revision)


def _display_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
