"""Jobs inside the server process: runner threads fed from memory, recovered from the table.

The embedded default (SQLite) needs no other service: ``lorry serve`` runs the
jobs itself. The queue in memory is only a delivery mechanism; on start every
``queued`` row is delivered again, and a sweep thread requeues jobs whose
heartbeat stopped (a process that died mid-job).
"""

from __future__ import annotations

import logging
import queue
import threading

from sqlalchemy import Engine

from registry.config import Settings
from registry.jobs.runner import JobRunner
from registry.services.jobs import queued_job_ids, recover_stale_jobs
from registry.storage.base import BlobStore
from registry.storage.scratch import reclaim

logger = logging.getLogger(__name__)

_STOP = ""


class EmbeddedQueue:
    """``settings.job_threads`` runner threads and one sweep thread in this process."""

    def __init__(self, engine: Engine, store: BlobStore, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self._stopping = threading.Event()
        self._runner = JobRunner(engine, store, settings, self._stopping, self)
        self._pending: queue.Queue[str] = queue.Queue()
        self._threads: list[threading.Thread] = []

    def enqueue(self, job_id: str, queue: str) -> None:
        self._pending.put(job_id)

    def start(self) -> None:
        for job_id, queue_name in recover_stale_jobs(self._engine, self._settings):
            self.enqueue(job_id, queue_name)
        for job_id, queue_name in queued_job_ids(self._engine):
            self.enqueue(job_id, queue_name)
        for index in range(self._settings.job_threads):
            thread = threading.Thread(target=self._work, name=f"lorry-job-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        sweeper = threading.Thread(target=self._sweep, name="lorry-job-sweep", daemon=True)
        sweeper.start()
        self._threads.append(sweeper)

    def stop(self) -> None:
        """Stop taking jobs; a running job stops after its current module, queued again."""
        self._stopping.set()
        for _ in range(self._settings.job_threads):
            self._pending.put(_STOP)
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def _work(self) -> None:
        while not self._stopping.is_set():
            job_id = self._pending.get()
            if job_id == _STOP:
                return
            try:
                self._runner.run(job_id)
            except Exception:
                logger.exception("job %s: the runner failed", job_id)

    def _sweep(self) -> None:
        while not self._stopping.wait(self._settings.job_heartbeat_s):
            try:
                for job_id, queue_name in recover_stale_jobs(self._engine, self._settings):
                    self.enqueue(job_id, queue_name)
                reclaim(self._settings.tmp_dir)
            except Exception:
                logger.exception("the stale-job sweep failed")
