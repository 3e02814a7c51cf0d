"""The server side of ``lorry``: the one CLI module that imports the registry.

``lorry serve``, ``lorry db upgrade|current`` and ``lorry worker`` run the service
itself; ``DatabaseRegistry`` is what the ``--local`` options of ``token``, ``gc`` and
``audit`` use instead of the REST API (``cli.local``). Every other CLI module is a
client of the REST API and of the composer.
"""

from __future__ import annotations

import getpass
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.client import LorryClientError
from cli.common import fail
from cli.local import install_local_registry

if TYPE_CHECKING:
    from sqlmodel import Session

    from registry.config import Settings
    from registry.services.audit import Caller
    from registry.services.audit_checkpoints import CheckpointSetup

# The registry is imported inside the commands: `lorry push` and the other clients
# start without loading it (about a second).

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


def worker(
    gpu: Annotated[bool, typer.Option("--gpu", help="Take only GPU and device-auto jobs.")] = False,
    cpu: Annotated[bool, typer.Option("--cpu", help="Take only CPU and device-auto jobs.")] = False,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, help="Jobs at once (default LORRY_JOB_THREADS)."),
    ] = None,
) -> None:
    """Run composition jobs from the PostgreSQL queue until stopped (SIGTERM / Ctrl-C).

    Start any number of workers, on any machines that reach the same database and
    blob store (LORRY_DATABASE_URL, LORRY_BLOB_URL, LORRY_S3_*). A job whose
    worker dies is retried by another worker once its heartbeat is stale.
    """
    from registry.config import Settings
    from registry.db import create_engine_for, ensure_migrated
    from registry.errors import LorryError
    from registry.jobs import open_job_queue, queues_for_worker
    from registry.jobs.checkpointing import CheckpointScheduler
    from registry.jobs.outbox import OutboxWorker
    from registry.services.audit_checkpoints import CheckpointSetup
    from registry.storage import open_blob_store

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()
    if concurrency is not None:
        settings.job_threads = concurrency
    engine = create_engine_for(settings)
    if engine.dialect.name == "sqlite":
        fail(
            "`lorry worker` shares jobs through PostgreSQL; on the embedded SQLite default "
            "`lorry serve` runs the jobs itself. Set LORRY_DATABASE_URL to a PostgreSQL database"
        )
    queues = queues_for_worker(gpu=gpu, cpu=cpu)
    if gpu and not cpu:
        import torch

        if not torch.cuda.is_available():
            fail(
                "--gpu: this machine has no CUDA device that torch can use; "
                "run `lorry worker --cpu` here"
            )
    try:
        ensure_migrated(engine)
        store = open_blob_store(settings)
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        checkpoints = CheckpointScheduler(
            engine,
            CheckpointSetup.from_settings(settings, store),
            settings.audit_checkpoint_interval_s,
        )
        queue = open_job_queue(engine, store, settings, run_jobs=True, queues=queues)
        queue.start()
        checkpoints.start()
        outbox = OutboxWorker(engine, settings)
        outbox.start()
    except LorryError as exc:
        fail(exc.message, exc.code)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    typer.echo(f"worker taking queues {', '.join(queues)}; stop with Ctrl-C", err=True)
    try:
        stop.wait()
    finally:
        checkpoints.stop()
        outbox.stop()
        queue.stop()
        engine.dispose()


@contextmanager
def _as_client_errors() -> Iterator[None]:
    """A ``LorryError`` of the registry as the ``LorryClientError`` the clients handle."""
    from registry.errors import LorryError

    try:
        yield
    except LorryError as exc:
        raise LorryClientError(exc.code, exc.message) from exc


class DatabaseRegistry:
    """``cli.local.LocalRegistry`` on the database of ``LORRY_DATABASE_URL``: the services
    the routes call, as ``local:<user>``; a ``LorryError`` becomes a ``LorryClientError``."""

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A session on the configured database, which must be migrated."""
        from sqlmodel import Session

        from registry.db import create_engine_for, ensure_migrated

        with _as_client_errors():
            engine = create_engine_for(self._settings())
            try:
                ensure_migrated(engine)
                with Session(engine) as session:
                    yield session
            finally:
                engine.dispose()

    @staticmethod
    def _settings() -> Settings:
        from registry.config import Settings

        return Settings()

    @staticmethod
    def _caller() -> Caller:
        from registry.services.audit import Caller

        return Caller(actor=f"local:{getpass.getuser()}")

    def create_token(
        self,
        *,
        principal: str,
        scopes: list[str],
        namespaces: list[str],
        description: str,
        expires_at: datetime | None,
    ) -> dict[str, Any]:
        from registry.services import tokens

        with self._session() as session:
            created = tokens.create_token(
                session,
                self._caller(),
                principal=principal,
                scopes=scopes,
                namespaces=namespaces,
                description=description,
                expires_at=expires_at,
            )
        return created.model_dump(mode="json")

    def list_tokens(self, *, include_revoked: bool) -> list[dict[str, Any]]:
        from registry.services import tokens

        with self._session() as session:
            page = tokens.list_tokens(session, include_revoked=include_revoked)
        return [item.model_dump(mode="json") for item in page.items]

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        from registry.services import tokens

        with self._session() as session:
            return tokens.revoke_token(session, self._caller(), token_id).model_dump(mode="json")

    def collect_garbage(self, *, delete: bool, grace_minutes: int | None) -> dict[str, Any]:
        from registry.services.gc import collect_garbage
        from registry.storage import open_blob_store

        settings = self._settings()
        with self._session() as session:
            report = collect_garbage(
                session,
                open_blob_store(settings),
                self._caller(),
                delete_blobs=delete,
                grace_minutes=settings.gc_grace_minutes if grace_minutes is None else grace_minutes,
                scratch_dir=settings.tmp_dir,
            )
        return report.model_dump(mode="json")

    def _checkpoint_setup(
        self, checkpoints: Path | None, public_key: Path | None, *, sign: bool
    ) -> CheckpointSetup:
        """The settings' checkpoint setup, with ``--checkpoints`` / ``--public-key`` in place
        of the configured targets and keys."""
        from registry.services.audit_checkpoints import CheckpointSetup
        from registry.services.signed_note import load_verifiers
        from registry.storage import open_blob_store
        from registry.storage.checkpoints import DirectoryCheckpoints

        settings = self._settings()
        if checkpoints is not None:
            settings.audit_checkpoint_targets = ""
        store = None
        if "blobstore:" in settings.audit_checkpoint_targets:
            store = open_blob_store(settings)
        setup = CheckpointSetup.from_settings(settings, store, sign=sign)
        if checkpoints is not None:
            setup.targets = [DirectoryCheckpoints(checkpoints)]
        if public_key is not None:
            setup.verifiers = load_verifiers(public_key)
        return setup

    def verify_audit(self, *, checkpoints: Path | None, public_key: Path | None) -> dict[str, Any]:
        from registry.services.audit_verify import verify_audit

        with _as_client_errors():
            setup = self._checkpoint_setup(checkpoints, public_key, sign=False)
        with self._session() as session:
            return verify_audit(session, setup).model_dump(mode="json")

    def write_checkpoint(self) -> dict[str, Any]:
        from registry.services.audit_checkpoints import write_checkpoint

        with _as_client_errors():
            setup = self._checkpoint_setup(None, None, sign=True)
        with self._session() as session:
            written = write_checkpoint(session, setup, only_if_moved=False)
        assert written is not None  # only_if_moved=False writes or raises
        return written.model_dump(mode="json")

    def generate_signing_key(self, key_file: Path, origin: str | None) -> tuple[str, str]:
        from registry.services.signed_note import generate_key

        name = origin or self._settings().audit_checkpoint_origin
        with _as_client_errors():
            return generate_key(key_file, name).vkey, name


def register(app: typer.Typer) -> None:
    """Add serve, db and worker to the app, and the database to ``--local`` commands."""
    app.command("serve")(serve)
    app.add_typer(db_app, name="db")
    app.command("worker")(worker)
    install_local_registry(DatabaseRegistry())
