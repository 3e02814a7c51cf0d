"""The application factory: ``create_app(settings)`` builds a Lorry service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import Depends, FastAPI
from sqlalchemy import make_url

from composer.errors import ComposerError
from registry.api.auth import authorize, check_exposure
from registry.api.errors import composer_error_status, install_error_handlers, register_error_type
from registry.api.limits import BodyLimitMiddleware, HeaderLimitMiddleware
from registry.api.main import api_router, health_router, hub_router
from registry.api.middleware import RequestIdMiddleware
from registry.api.reads import Reader
from registry.config import Settings
from registry.console import mount_console
from registry.db import create_engine_for, ensure_migrated
from registry.errors import UnsupportedConfiguration
from registry.jobs import open_job_queue
from registry.jobs.checkpointing import CheckpointScheduler
from registry.jobs.outbox import OutboxWorker
from registry.services.access_log import AccessLog
from registry.services.audit_checkpoints import CheckpointSetup
from registry.services.audit_verify import VerificationCache
from registry.services.principal_cache import PrincipalCache
from registry.storage import open_blob_store
from registry.storage.scratch import reclaim

logger = logging.getLogger(__name__)


def check_workers(settings: Settings) -> None:
    """Refuse more than one server process on SQLite (``lorry serve --workers``)."""
    if settings.workers > 1 and make_url(settings.resolved_database_url()).get_backend_name() == (
        "sqlite"
    ):
        raise UnsupportedConfiguration(
            f"--workers {settings.workers} needs PostgreSQL (LORRY_DATABASE_URL=postgresql+"
            "psycopg://...): on SQLite one process serves, because its embedded job runner "
            "keeps its queue in that process and a single writer holds the whole database; "
            "run with --workers 1, or move to PostgreSQL to use more cores"
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """A Lorry app for ``settings`` (default: from ``LORRY_*`` variables).

    The engine is built here but connects on first use; at startup (lifespan)
    the app opens the blob store and refuses to start unless the database
    schema is migrated (``NotMigrated`` names the command that fixes it).
    """
    settings = settings or Settings()
    engine = create_engine_for(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(ensure_migrated, engine)
        await anyio.to_thread.run_sync(check_exposure, settings, engine)
        app.state.blob_store = await anyio.to_thread.run_sync(open_blob_store, settings)
        checkpoints = CheckpointSetup.from_settings(settings, app.state.blob_store)
        app.state.audit_checkpoints = checkpoints
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        await anyio.to_thread.run_sync(reclaim, settings.tmp_dir)
        job_queue = open_job_queue(
            engine, app.state.blob_store, settings, run_jobs=settings.embedded_worker
        )
        await anyio.to_thread.run_sync(job_queue.start)
        app.state.job_queue = job_queue
        checkpoint_scheduler = CheckpointScheduler(
            engine, checkpoints, settings.audit_checkpoint_interval_s
        )
        checkpoint_scheduler.start()
        access_log.start()
        outbox_worker = OutboxWorker(engine, settings)
        outbox_worker.start()
        logger.info(
            "Lorry ready: database %s, blobs %s",
            engine.url.render_as_string(hide_password=True),
            settings.resolved_blob_url(),
        )
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(checkpoint_scheduler.stop)
            await anyio.to_thread.run_sync(outbox_worker.stop)
            await anyio.to_thread.run_sync(job_queue.stop)
            await anyio.to_thread.run_sync(access_log.stop)
            engine.dispose()

    app = FastAPI(
        title="Lorry",
        summary="A registry and composition service for LoRA adapters",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.reader = Reader(engine)
    app.state.audit_verify_cache = VerificationCache(settings.audit_verify_interval_s)
    access_log = AccessLog(
        engine,
        flush_s=settings.access_log_flush_s,
        max_pending=settings.access_log_max_pending,
    )
    app.state.access_log = access_log
    app.state.principal_cache = PrincipalCache(settings.principal_cache_s)
    install_error_handlers(app)
    register_error_type(app, ComposerError, composer_error_status)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_json_body_bytes)
    app.add_middleware(HeaderLimitMiddleware, max_bytes=settings.max_header_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_router)
    api_router.mount(app, dependencies=[Depends(authorize)])
    hub_router.mount(app, dependencies=[Depends(authorize)])
    mount_console(app)
    return app
