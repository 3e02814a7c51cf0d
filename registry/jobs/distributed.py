"""Jobs on PostgreSQL through procrastinate: any number of ``lorry worker`` processes share them.

procrastinate only distributes job ids (queues ``gpu``, ``cpu``, ``any``; a
``queueing_lock`` per job keeps one pending delivery); the state, progress and
result live in Lorry's ``jobs`` table, whose claim (queued -> running)
makes a job run once however often it is delivered. Each worker also sweeps for
jobs orphaned by a dead process (Lorry heartbeat too old), delivers them again,
and closes procrastinate's own record of them (its stalled jobs) as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

import anyio.to_thread
from procrastinate import App, JobContext, PsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.jobs import Status
from sqlalchemy import Engine, make_url

from registry.config import Settings
from registry.jobs.runner import JobRunner, worker_name
from registry.services.job_queue import QUEUES
from registry.services.jobs import queued_job_ids, recover_stale_jobs
from registry.storage.base import BlobStore
from registry.storage.scratch import reclaim

logger = logging.getLogger(__name__)

TASK_NAME = "lorry.compose"
PROCRASTINATE_SCHEMA = "procrastinate"
"""The PostgreSQL schema of procrastinate's objects (as migration 0004 creates it)."""


def libpq_conninfo(database_url: str) -> str:
    """The libpq URL of a SQLAlchemy PostgreSQL URL (``postgresql+psycopg://`` -> ``postgresql://``)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run_composition(context: JobContext, job_id: str) -> None:
    runner: JobRunner = context.additional_context["runner"]
    runner.run(job_id)


def build_app(settings: Settings) -> App:
    """A procrastinate app on the configured PostgreSQL, with Lorry's one task.

    procrastinate's tables live in their own schema (created by ``lorry db upgrade``,
    migration ``0004_compose_jobs``); its connections look there first.
    """
    connector = PsycopgConnector(
        conninfo=libpq_conninfo(settings.resolved_database_url()),
        kwargs={"options": f"-c search_path={PROCRASTINATE_SCHEMA}"},
        min_size=1,
        max_size=4,
    )
    app = App(connector=connector)
    app.task(name=TASK_NAME, pass_context=True)(_run_composition)
    return app


class DistributedQueue:
    """Defers job ids into procrastinate; with ``run_worker``, also runs a worker thread."""

    def __init__(
        self,
        engine: Engine,
        store: BlobStore,
        settings: Settings,
        *,
        run_worker: bool,
        queues: list[str] | None = None,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._stopping = threading.Event()
        self._runner = JobRunner(engine, store, settings, self._stopping, self)
        self._run_worker = run_worker
        self._queues = queues
        self._app = build_app(settings)
        self._worker_app = build_app(settings)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    def enqueue(self, job_id: str, queue: str) -> None:
        with contextlib.suppress(AlreadyEnqueued):
            self._app.configure_task(TASK_NAME, queue=queue, queueing_lock=job_id).defer(
                job_id=job_id
            )

    def start(self) -> None:
        self._app.open()
        if not self._run_worker:
            return
        self._thread = threading.Thread(target=self._thread_main, name="lorry-worker", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None and self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join()
            self._thread = None
        self._app.close()

    def wait(self) -> None:
        """Block until the worker thread ends (``lorry worker``'s foreground)."""
        if self._thread is not None:
            self._thread.join()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            logger.exception("the procrastinate worker stopped with an error")
            self._failure = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self._worker_app.open_async():
            await self._deliver(await anyio.to_thread.run_sync(queued_job_ids, self._engine))
            worker = asyncio.create_task(
                self._worker_app.run_worker_async(
                    queues=self._queues if self._queues is not None else list(QUEUES),
                    concurrency=self._settings.job_threads,
                    name=worker_name(),
                    additional_context={"runner": self._runner},
                    install_signal_handlers=False,
                    delete_jobs="successful",
                    fetch_job_polling_interval=2.0,
                )
            )
            sweeper = asyncio.create_task(self._sweep())
            self._ready.set()
            stopped = asyncio.create_task(self._stop.wait())
            await asyncio.wait({worker, stopped}, return_when=asyncio.FIRST_COMPLETED)
            for task in (worker, sweeper, stopped):
                task.cancel()
            results = await asyncio.gather(worker, sweeper, stopped, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
                    logger.error("worker task ended with %r", result)

    async def _deliver(self, jobs: list[tuple[str, str]]) -> None:
        for job_id, queue in jobs:
            if self._queues is not None and queue not in self._queues:
                continue
            with contextlib.suppress(AlreadyEnqueued):
                await self._worker_app.configure_task(
                    TASK_NAME, queue=queue, queueing_lock=job_id
                ).defer_async(job_id=job_id)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._settings.job_heartbeat_s)
            try:
                stale: list[Any] = await anyio.to_thread.run_sync(
                    recover_stale_jobs, self._engine, self._settings
                )
                await self._deliver(stale)
                waiting = await anyio.to_thread.run_sync(
                    queued_job_ids, self._engine, self._settings.job_stale_after_s
                )
                await self._deliver(waiting)
                manager = self._worker_app.job_manager
                for job in await manager.get_stalled_jobs(task_name=TASK_NAME):
                    await manager.finish_job(job, status=Status.FAILED, delete_job=False)
                await anyio.to_thread.run_sync(reclaim, self._settings.tmp_dir)
            except Exception:
                logger.exception("the stale-job sweep failed")
