"""Running one job: claim it, run it by its kind, record the outcome.

What a job does is its kind's ``execute`` (``registry.services.job_kinds``: a
composition publishes a version, an export adds a derived file to one); the runner
owns the rest. Every process that runs jobs (``lorry serve`` threads, ``lorry
worker``) calls ``JobRunner.run(job_id)``. The claim is a conditional update of the
job's row (queued -> running), so a job delivered twice still runs once.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

import composer
from registry.config import Settings
from registry.db import write_transaction
from registry.errors import LorryError
from registry.services.audit import Caller, record_event
from registry.services.job_kinds import job_kind
from registry.services.job_kinds.base import JobContext, JobOutcome, StepReport
from registry.services.job_queue import JobQueue
from registry.services.jobs import append_log, finish_cancelled, job_action, job_target
from registry.services.names import repository_id
from registry.storage.base import BlobStore
from registry.storage.scratch import storage_unavailable
from registry.tables import Job, utcnow

logger = logging.getLogger(__name__)

_PROGRESS_EVERY_S = 0.5


class _Cancelled(Exception):
    """Raised inside the job's progress callback when the job was cancelled."""


class _Interrupted(Exception):
    """Raised inside the progress callback when this process is shutting down."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class _Heartbeat:
    """Writes the job's ``heartbeat_at`` from a thread while the job runs."""

    def __init__(self, engine: Engine, job_id: str, worker: str, every_s: float) -> None:
        self._engine, self._job_id, self._worker, self._every = engine, job_id, worker, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            try:
                with Session(self._engine) as session:
                    session.execute(
                        update(Job)
                        .where(
                            col(Job.id) == self._job_id,
                            col(Job.state) == "running",
                            col(Job.worker) == self._worker,
                        )
                        .values(heartbeat_at=utcnow())
                    )
                    session.commit()
            except Exception:
                logger.exception("heartbeat of job %s failed", self._job_id)


def without_server_paths(message: str, settings: Settings) -> str:
    """``message`` with the server's own paths taken out: a path in a job's scratch
    directory becomes its part inside that directory (``source/config.json``), any other
    path under the server's home its part inside the home. Callers see what went wrong,
    never where the server keeps its files."""
    roots = {settings.tmp_dir, settings.tmp_dir.resolve()}
    for root in sorted(roots, key=lambda p: -len(str(p))):
        message = re.sub(re.escape(str(root)) + r"/[^/\s'\"]+/?", "", message)
    for home in sorted({settings.home, settings.home.resolve()}, key=lambda p: -len(str(p))):
        message = re.sub(re.escape(str(home)) + r"/?", "", message)
    return message


class JobRunner:
    """Runs jobs (of every kind) against one database and blob store.

    ``stopping`` is set when the process shuts down: a running job then stops after
    its current module (or tensor) and goes back to ``queued`` (not counted as a run).
    """

    def __init__(
        self,
        engine: Engine,
        store: BlobStore,
        settings: Settings,
        stopping: threading.Event | None = None,
        queue: JobQueue | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.settings = settings
        self.stopping = stopping
        self.queue = queue

    def run(self, job_id: str) -> str | None:
        """Run the job if it is still queued; returns its final state (None: not claimed)."""
        worker = worker_name()
        if self.settings.torch_threads is not None:
            # torch keeps the count per thread: set it in the thread that runs the job
            composer.use_threads(self.settings.torch_threads)
        row = self._claim(job_id, worker)
        if row is None:
            return None
        logger.info("job %s: running on %s (attempt %d)", job_id, worker, row.attempts)
        caller = Caller(actor=row.created_by, request_id=row.request_id)
        try:
            with _Heartbeat(self.engine, job_id, worker, self.settings.job_heartbeat_s):
                context = JobContext(
                    self.engine,
                    self.store,
                    self.settings,
                    self._report(job_id, worker),
                    self.queue,
                )
                outcome = job_kind(row.kind).execute(context, row)
        except _Cancelled:
            return self._finish(job_id, worker, caller, "cancelled", None)
        except _Interrupted:
            return self._requeue(job_id, worker)
        except (composer.ComposerError, LorryError) as exc:
            error = (exc.code, exc.message)
            logger.info("job %s failed: %s: %s", job_id, *error)
            return self._finish(job_id, worker, caller, "failed", error)
        except OSError as exc:
            translated = storage_unavailable("write the job's files", exc)
            error = (translated.code, translated.message)
            logger.warning("job %s failed: %s: %s (%s)", job_id, *error, exc)
            return self._finish(job_id, worker, caller, "failed", error)
        except Exception as exc:
            logger.exception("job %s failed unexpectedly", job_id)
            return self._finish(
                job_id, worker, caller, "failed", ("internal", f"{type(exc).__name__}: {exc}")
            )
        notes = self._after_success(context, row, outcome)
        return self._finish(job_id, worker, caller, "succeeded", None, outcome, notes)

    def _after_success(self, context: JobContext, row: Job, outcome: JobOutcome) -> list[str]:
        """The kind's follow-up work (a composition's evaluations), done before the job
        shows as succeeded so that what it starts exists by then; its failure is a line in
        the job's log, and the job still succeeds (its output is published)."""
        try:
            return job_kind(row.kind).after_success(context, row, outcome)
        except (composer.ComposerError, LorryError) as exc:
            return [f"follow-up failed: {exc.code}: {exc.message}"]
        except Exception as exc:
            logger.exception("job %s: its follow-up failed", row.id)
            return [f"follow-up failed: internal: {type(exc).__name__}: {exc}"]

    def _claim(self, job_id: str, worker: str) -> Job | None:
        with Session(self.engine, expire_on_commit=False) as session:
            with write_transaction(session):
                row = session.exec(select(Job).where(Job.id == job_id).with_for_update()).first()
                if row is None or row.state != "queued":
                    session.rollback()
                    return None
                if row.cancel_requested:
                    finish_cancelled(session, row, Caller(actor=row.created_by), "cancelled")
                    return None
                now = utcnow()
                row.state = "running"
                row.attempts += 1
                row.worker = worker
                row.started_at = row.started_at or now
                row.heartbeat_at = now
                threads = self.settings.torch_threads
                on = f"{worker}, {threads} torch thread(s)" if threads is not None else worker
                append_log(row, f"started on {on} (attempt {row.attempts})")
                session.add(row)
                return row

    def _owned(self, session: Session, job_id: str, worker: str) -> Job | None:
        row = session.exec(select(Job).where(Job.id == job_id).with_for_update()).first()
        if row is None or row.state != "running" or row.worker != worker:
            return None
        return row

    def _report(self, job_id: str, worker: str) -> StepReport:
        """Record ``(module, done, total)`` on the job (at most every 0.5 s and at the end);
        raise to stop the job when it was cancelled or this process is shutting down."""
        last = 0.0
        delay = self.settings.compose_module_delay_s

        def report(module: str | None, done: int, total: int) -> None:
            nonlocal last
            if delay:
                time.sleep(delay)
            if self.stopping is not None and self.stopping.is_set():
                raise _Interrupted
            now = time.monotonic()
            if now - last < _PROGRESS_EVERY_S and done < total:
                return
            last = now
            with Session(self.engine) as session, write_transaction(session):
                row = self._owned(session, job_id, worker)
                if row is None or row.cancel_requested:
                    session.rollback()
                    raise _Cancelled
                row.progress_done, row.progress_total = done, total
                row.current_module = module
                row.heartbeat_at = utcnow()
                session.add(row)

        return report

    def _requeue(self, job_id: str, worker: str) -> str | None:
        with Session(self.engine) as session:
            with write_transaction(session):
                row = self._owned(session, job_id, worker)
                if row is None:
                    session.rollback()
                    return None
                row.state = "queued"
                row.worker = None
                row.attempts -= 1
                append_log(row, f"{worker} shut down mid-job; queued again")
                session.add(row)
                return "queued"

    def _finish(
        self,
        job_id: str,
        worker: str,
        caller: Caller,
        state: str,
        error: tuple[str, str] | None,
        result: JobOutcome | None = None,
        notes: list[str] | None = None,
    ) -> str | None:
        with Session(self.engine) as session:
            with write_transaction(session):
                row = self._owned(session, job_id, worker)
                if row is None:
                    session.rollback()
                    return None
                if state == "cancelled":
                    finish_cancelled(session, row, caller, "cancelled between modules")
                    return state
                row.state = state
                row.finished_at = utcnow()
                after: dict[str, Any] = {"job": job_id, "state": state}
                if error is not None:
                    error = (error[0], without_server_paths(error[1], self.settings))
                    row.error_code, row.error_message = error
                    append_log(row, f"failed: {error[0]}: {error[1]}")
                    after["error"] = error[0]
                    action = job_action(row.kind, "fail")
                else:
                    assert result is not None
                    version, digest, note = result
                    row.result_version, row.result_digest = version, digest
                    row.progress_done = row.progress_total
                    append_log(row, f"succeeded: {row.target}@{version} ({note})")
                    for line in notes or []:
                        append_log(row, without_server_paths(line, self.settings))
                    after.update(version=version, digest=f"sha256:{digest}")
                    after.update(job_kind(row.kind).succeed_details(row))
                    action = job_action(row.kind, "succeed")
                session.add(row)
                record_event(
                    session,
                    caller,
                    action,
                    repository=repository_id(*row.target.split("/", 1)),
                    target=job_target(job_id),
                    after=after,
                )
                return state
