"""Where jobs run: threads inside the server on SQLite, procrastinate on PostgreSQL.

queue = open_job_queue(engine, store, settings, run_jobs=True)
queue.start(); ...; queue.enqueue(job_id, "any"); ...; queue.stop()
"""

from __future__ import annotations

from sqlalchemy import Engine

from registry.config import Settings
from registry.jobs.runner import JobRunner
from registry.services.job_queue import QUEUES, JobQueue, queues_for_worker
from registry.storage.base import BlobStore

__all__ = ["QUEUES", "JobQueue", "JobRunner", "open_job_queue", "queues_for_worker"]


def open_job_queue(
    engine: Engine,
    store: BlobStore,
    settings: Settings,
    *,
    run_jobs: bool,
    queues: list[str] | None = None,
) -> JobQueue:
    """The job queue of the configured database.

    SQLite: jobs run in this process's threads (``run_jobs`` is implied: an
    embedded registry has no other process to run them). PostgreSQL: jobs go
    through procrastinate; ``run_jobs`` adds a worker in this process that takes
    ``queues`` (default: all).
    """
    if engine.dialect.name == "sqlite":
        from registry.jobs.embedded import EmbeddedQueue

        return EmbeddedQueue(engine, store, settings)
    from registry.jobs.distributed import DistributedQueue

    return DistributedQueue(engine, store, settings, run_worker=run_jobs, queues=queues)
