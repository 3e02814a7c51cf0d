"""Running one job: claim it, run it by its kind, record the outcome.

A composition fetches its inputs, composes and publishes a version; an export
(``registry.jobs.exporting``) adds a derived file to a version. Every process
that runs jobs (``lorry serve`` threads, ``lorry worker``) calls
``JobRunner.run(job_id)``. The claim is a conditional update of the job's row
(queued -> running), so a job delivered twice still runs once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

import composer
from registry.config import Settings
from registry.db import begin_write
from registry.errors import LorryError
from registry.jobs.exporting import StepReport, build_export
from registry.jobs.workspace import library_versions, materialise, store_file
from registry.schemas.repos import FileEntry, PublishRequest
from registry.services.audit import Caller, record_event
from registry.services.jobs import append_log, finish_cancelled, job_action, job_target
from registry.services.names import repository_id
from registry.services.publish import manifest_digest, publish_version
from registry.storage.base import BlobStore
from registry.storage.scratch import scratch_directory, storage_unavailable
from registry.tables import ComposeJob, Repository, Version, VersionFile, utcnow
from registry.validation import ManifestEntry

logger = logging.getLogger(__name__)

_PROGRESS_EVERY_S = 0.5
_COMPOSE_LIBRARIES = ("lorry", "torch", "safetensors", "mergekit", "peft")


class _Cancelled(Exception):
    """Raised inside the composer's progress callback when the job was cancelled."""


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
                        update(ComposeJob)
                        .where(
                            col(ComposeJob.id) == self._job_id,
                            col(ComposeJob.state) == "running",
                            col(ComposeJob.worker) == self._worker,
                        )
                        .values(heartbeat_at=utcnow())
                    )
                    session.commit()
            except Exception:
                logger.exception("heartbeat of job %s failed", self._job_id)


class JobRunner:
    """Runs jobs (compositions and exports) against one database and blob store.

    ``stopping`` is set when the process shuts down: a running job then stops after
    its current module (or tensor) and goes back to ``queued`` (not counted as a run).
    """

    def __init__(
        self,
        engine: Engine,
        store: BlobStore,
        settings: Settings,
        stopping: threading.Event | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.settings = settings
        self.stopping = stopping

    def run(self, job_id: str) -> str | None:
        """Run the job if it is still queued; returns its final state (None: not claimed)."""
        worker = worker_name()
        row = self._claim(job_id, worker)
        if row is None:
            return None
        logger.info("job %s: running on %s (attempt %d)", job_id, worker, row.attempts)
        caller = Caller(actor=row.created_by, request_id=row.request_id)
        try:
            with _Heartbeat(self.engine, job_id, worker, self.settings.job_heartbeat_s):
                if row.kind == "export":
                    outcome = build_export(
                        self.engine, self.store, self.settings, row, self._report(job_id, worker)
                    )
                else:
                    outcome = self._compose_and_publish(row, worker)
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
        return self._finish(job_id, worker, caller, "succeeded", None, outcome)

    def _claim(self, job_id: str, worker: str) -> ComposeJob | None:
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                begin_write(session)
                row = session.exec(
                    select(ComposeJob).where(ComposeJob.id == job_id).with_for_update()
                ).first()
                if row is None or row.state != "queued":
                    session.rollback()
                    return None
                if row.cancel_requested:
                    finish_cancelled(session, row, Caller(actor=row.created_by), "cancelled")
                    session.commit()
                    return None
                now = utcnow()
                row.state = "running"
                row.attempts += 1
                row.worker = worker
                row.started_at = row.started_at or now
                row.heartbeat_at = now
                append_log(row, f"started on {worker} (attempt {row.attempts})")
                session.add(row)
                session.commit()
                return row
            except BaseException:
                session.rollback()
                raise

    def _owned(self, session: Session, job_id: str, worker: str) -> ComposeJob | None:
        row = session.exec(
            select(ComposeJob).where(ComposeJob.id == job_id).with_for_update()
        ).first()
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
            with Session(self.engine) as session:
                begin_write(session)
                row = self._owned(session, job_id, worker)
                if row is None or row.cancel_requested:
                    session.rollback()
                    raise _Cancelled
                row.progress_done, row.progress_total = done, total
                row.current_module = module
                row.heartbeat_at = utcnow()
                session.add(row)
                session.commit()

        return report

    def _progress(self, job_id: str, worker: str) -> composer.ProgressCallback:
        report = self._report(job_id, worker)

        def on_module(event: composer.ProgressEvent) -> None:
            report(event.module, event.done, event.total)

        return on_module

    def _input_files(self, job: ComposeJob) -> dict[str, list[tuple[str, str]]]:
        by_ref: dict[str, list[tuple[str, str]]] = {}
        with Session(self.engine) as session:
            for item in job.inputs:
                namespace, name = item["repository"].split("/", 1)
                hex_digest = item["digest"].removeprefix("sha256:")
                version = session.exec(
                    select(Version)
                    .join(Repository, col(Repository.id) == col(Version.repository_id))
                    .where(
                        Repository.namespace == namespace,
                        Repository.name == name,
                        Version.digest == hex_digest,
                    )
                ).one()
                rows = session.exec(
                    select(VersionFile).where(VersionFile.version_id == version.id)
                ).all()
                ref = f"{item['repository']}@sha256:{hex_digest}"
                by_ref[ref] = [(row.path, row.sha256) for row in rows]
        return by_ref

    def _ingest(self, out: Path) -> list[ManifestEntry]:
        entries = []
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            relative = path.relative_to(out).as_posix()
            sha256, size = store_file(self.store, path)
            entries.append(ManifestEntry(path=relative, sha256=sha256, size=size))
        return entries

    def _existing_version(self, target: str, digest: str) -> int | None:
        namespace, name = target.split("/", 1)
        with Session(self.engine) as session:
            number: int | None = session.exec(
                select(Version.number)
                .join(Repository, col(Repository.id) == col(Version.repository_id))
                .where(
                    Repository.namespace == namespace,
                    Repository.name == name,
                    Version.digest == digest,
                )
            ).first()
        return number

    def _lineage(self, job: ComposeJob, result: composer.ComposeResult) -> dict[str, Any]:
        recipe = composer.parse_recipe(job.recipe)
        return {
            "job": job.id,
            "method": recipe.method,
            "seed": recipe.parameters.seed,
            "output_type": recipe.output.type,
            "parents": [
                {
                    "repository": item["repository"],
                    "version": item["version"],
                    "digest": item["digest"],
                    "weight": item.get("weight"),
                    "role": item.get("role", "input"),
                }
                for item in job.inputs
            ],
            "recipe": job.recipe,
            "device": result.device,
            "max_error": result.max_error,
            "libraries": library_versions(_COMPOSE_LIBRARIES),
        }

    def _compose_and_publish(self, job: ComposeJob, worker: str) -> tuple[int, str, str]:
        """Compose and publish; ``(version, digest hex, note)``."""
        with scratch_directory(self.settings.tmp_dir, f"job-{job.id}-") as work:
            root = work / "inputs"
            for ref, files in self._input_files(job).items():
                materialise(self.store, files, root / ref)
            out = work / "out"
            result = composer.compose(
                job.recipe, out, root=root, progress=self._progress(job.id, worker)
            )
            entries = self._ingest(out)
            digest = manifest_digest(entries)
            existing = self._existing_version(job.target, digest)
            if existing is not None:
                return existing, digest, "an identical version existed; no new version"
            namespace, name = job.target.split("/", 1)
            request = PublishRequest(
                files=[FileEntry(path=e.path, sha256=e.sha256, size=e.size) for e in entries],
                message=job.message or f"composed by job {job.id}",
                alias=job.alias,
                kind="model" if job.output_kind == "model" else "adapter",
            )
            with Session(self.engine) as session:
                published = publish_version(
                    session,
                    self.store,
                    self.settings,
                    Caller(actor=job.created_by, request_id=job.request_id),
                    namespace,
                    name,
                    request,
                    lineage=self._lineage(job, result),
                )
            return published.version, published.digest.removeprefix("sha256:"), "published"

    def _requeue(self, job_id: str, worker: str) -> str | None:
        with Session(self.engine) as session:
            try:
                begin_write(session)
                row = self._owned(session, job_id, worker)
                if row is None:
                    session.rollback()
                    return None
                row.state = "queued"
                row.worker = None
                row.attempts -= 1
                append_log(row, f"{worker} shut down mid-job; queued again")
                session.add(row)
                session.commit()
                return "queued"
            except BaseException:
                session.rollback()
                raise

    def _finish(
        self,
        job_id: str,
        worker: str,
        caller: Caller,
        state: str,
        error: tuple[str, str] | None,
        result: tuple[int, str, str] | None = None,
    ) -> str | None:
        with Session(self.engine) as session:
            try:
                begin_write(session)
                row = self._owned(session, job_id, worker)
                if row is None:
                    session.rollback()
                    return None
                if state == "cancelled":
                    finish_cancelled(session, row, caller, "cancelled between modules")
                    session.commit()
                    return state
                row.state = state
                row.finished_at = utcnow()
                after: dict[str, Any] = {"job": job_id, "state": state}
                if error is not None:
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
                    after.update(version=version, digest=f"sha256:{digest}")
                    if row.kind == "export":
                        after["path"] = row.recipe["path"]
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
                session.commit()
                return state
            except BaseException:
                session.rollback()
                raise
