"""``lorry serve`` and ``lorry db upgrade|current``: the commands that run the service itself."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

db_app = typer.Typer(help="Manage the metadata database schema.", no_args_is_help=True)


def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default LORRY_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default LORRY_PORT or 8765).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Server processes sharing the port (default LORRY_WORKERS or 1); more than "
            "one needs PostgreSQL.",
        ),
    ] = None,
) -> None:
    """Start the Lorry service.

    On the embedded default (no LORRY_DATABASE_URL: an SQLite file under
    LORRY_HOME) the schema is migrated first, so a fresh machine serves in one
    command. An explicitly configured database (PostgreSQL in production) is
    never migrated implicitly: if it is behind, serve refuses to start and says
    to run `lorry db upgrade`.

    `--workers N` runs N server processes on one port, to use N cores; each has its
    own connection pool, job runner and access-log writer. PostgreSQL only: SQLite
    serves from one process (its embedded job runner keeps its queue in memory and
    one writer holds the whole database), so N > 1 is refused there.
    """
    import uvicorn

    from registry.api.auth import check_exposure
    from registry.app import check_workers, create_app
    from registry.config import Settings
    from registry.db import create_engine_for, ensure_migrated, upgrade
    from registry.errors import LorryError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    if workers is not None:
        settings.workers = workers
    try:
        check_workers(settings)
        if not settings.database_url:
            upgrade(settings)
        else:
            engine = create_engine_for(settings)
            try:
                ensure_migrated(engine)
            finally:
                engine.dispose()
        engine = create_engine_for(settings)
        try:
            check_exposure(settings, engine)
        finally:
            engine.dispose()
    except LorryError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    if settings.workers == 1:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            h11_max_incomplete_event_size=settings.max_header_bytes,
        )
        return
    # Each worker process builds its own app from the environment: pass the options there.
    os.environ.update(
        {"LORRY_HOST": settings.host, "LORRY_PORT": str(settings.port), "LORRY_WORKERS": "1"}
    )
    uvicorn.run(
        "registry.app:create_app",
        factory=True,
        workers=settings.workers,
        # A worker answers the supervisor's ping only once started; on a busy host that
        # may take longer than uvicorn's 5 s default, which would restart it in a loop.
        timeout_worker_healthcheck=30,
        host=settings.host,
        port=settings.port,
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database named by LORRY_DATABASE_URL (default: the embedded SQLite file)."""
    from registry.config import Settings
    from registry.db import head_revision, upgrade
    from registry.errors import LorryError

    try:
        upgrade(Settings())
    except LorryError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"database is at revision {head_revision()} (newest)")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and whether it is the newest."""
    from registry.config import Settings
    from registry.db import create_engine_for, current_revision, head_revision
    from registry.errors import LorryError

    engine = create_engine_for(Settings())
    try:
        current = current_revision(engine)
    except LorryError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    head = head_revision()
    if current == head:
        typer.echo(f"{current} (newest)")
    else:
        typer.echo(f"{current or 'not migrated'} (newest is {head}; run `lorry db upgrade`)")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(db_app, name="db")
