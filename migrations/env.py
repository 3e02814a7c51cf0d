"""Alembic environment of Lorry: metadata from ``registry.tables``, SQLite and PostgreSQL.

``registry.db.upgrade`` passes an open connection in ``config.attributes``; run on
its own (``alembic -c ...``) the database URL comes from the ``LORRY_*`` settings.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from registry.config import Settings
from registry.db import create_engine_for
from registry.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=Settings().resolved_database_url(),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine_for(Settings())
    try:
        with engine.begin() as owned:
            _run(owned)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
