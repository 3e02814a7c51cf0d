"""Jobs of every kind (``registry.services.job_kinds``): create, read, list, cancel, and
recover the ones a dead process left running."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine, func, text
from sqlmodel import Session, col, select

from registry.config import Settings
from registry.db import write_transaction
from registry.errors import Conflict, InvalidInput, JobNotFound
from registry.schemas.compose import (
    FINISHED_STATES,
    JOB_STATES,
    JobInput,
    JobList,
    JobLogEntry,
    JobOut,
    JobProgress,
    JobResult,
)
from registry.services.audit import Caller, record_event
from registry.services.job_kinds import job_kind
from registry.services.job_queue import JobQueue
from registry.services.principals import WRITE
from registry.services.visibility import EVERYTHING, Visibility
from registry.tables import Job, utcnow

logger = logging.getLogger(__name__)

SYSTEM = Caller(actor="system")
"""The actor of what Lorry does on its own (failing a job whose process died)."""


def job_target(job_id: str) -> str:
    return f"job:{job_id}"


def job_action(kind: str, verb: str) -> str:
    """The audit action of a job event: ``composition.succeed``, ``export.fail`` ..."""
    return job_kind(kind).events.action(verb)


def append_log(row: Job, message: str) -> None:
    """Add a line to the job's log (a new list, so the JSON column is written back)."""
    row.log = [*row.log, {"at": utcnow().isoformat(), "message": message}]


def job_out(row: Job, *, reused: bool = False, **extra: Any) -> JobOut:
    """The job as the API shows it; ``extra``: the fields particular to its kind."""
    result = None
    if row.result_version is not None and row.result_digest is not None:
        result = JobResult(
            repository=row.target, version=row.result_version, digest=f"sha256:{row.result_digest}"
        )
    error = None
    if row.error_code is not None:
        error = {"code": row.error_code, "message": row.error_message or ""}
    duration = None
    if row.started_at is not None and row.finished_at is not None:
        duration = (row.finished_at - row.started_at).total_seconds()
    return JobOut(
        id=row.id,
        kind=row.kind,  # type: ignore[arg-type]
        state=row.state,  # type: ignore[arg-type]
        target=row.target,
        output_kind=job_kind(row.kind).output_kind(row.spec),
        queue=row.queue,
        recipe=row.spec,
        inputs=[JobInput(**item) for item in row.inputs],
        alias=row.alias,
        message=row.message,
        progress=JobProgress(
            done=row.progress_done, total=row.progress_total, module=row.current_module
        ),
        log=[JobLogEntry(**entry) for entry in row.log],
        error=error,
        result=result,
        attempts=row.attempts,
        cancel_requested=row.cancel_requested,
        worker=row.worker,
        created_by=row.created_by,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_s=duration,
        reused=reused,
        **extra,
    )


def describe_job(session: Session, row: Job, *, reused: bool = False) -> JobOut:
    """``job_out`` with the fields particular to the job's kind (an export: its file)."""
    return job_out(row, reused=reused, **job_kind(row.kind).describe(session, row))


ACTIVE_STATES = ("queued", "running", "succeeded")
"""A job in one of these states answers an identical resubmission (by default)."""

ExistingJob = Callable[[Session, str], "Job | None"]
"""``(session, idempotency key) -> the job that answers a submission, or None``."""


def active_job(kind: str, states: Sequence[str] = ACTIVE_STATES) -> ExistingJob:
    """The oldest job of ``kind`` with the key in one of ``states``."""

    def find(session: Session, key: str) -> Job | None:
        found: Job | None = session.exec(
            select(Job)
            .where(Job.idempotency_key == key, Job.kind == kind, col(Job.state).in_(states))
            .order_by(col(Job.created_at))
        ).first()
        return found

    return find


def create_job(
    session: Session,
    caller: Caller,
    queue: JobQueue,
    *,
    kind: str,
    spec: BaseModel,
    target: str,
    inputs: Sequence[JobInput],
    summary: str,
    event: Mapping[str, Any] | None = None,
    alias: str | None = None,
    message: str | None = None,
    existing: ExistingJob | None = None,
) -> JobOut:
    """Record a job of ``kind`` writing to ``target`` (or find the one that answers it) and
    enqueue it; ``reused`` in the answer says that an earlier submission answered.

    ``spec`` is an instance of the kind's spec model, every reference in it pinned; the
    kind gives its stored document, idempotency key and queue. Under a PostgreSQL advisory
    lock on the key (identical submissions at the same moment: one creates the job, the
    rest find it), ``existing`` (default: ``active_job(kind)``) may answer instead. Else
    the row is written as ``queued``, its log starting with ``submitted; {summary}`` and the
    inputs, with the kind's submit event (``after``: the job, ``event``, the inputs, the
    key); it commits, then goes to ``queue``. Nothing is written when anything fails.
    """
    definition = job_kind(kind)
    document = definition.dump_spec(spec)
    key = definition.idempotency_key(document, target)
    find_existing = existing or active_job(kind)
    with write_transaction(session):
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
            )
        answered = find_existing(session, key)
        if answered is not None:
            session.rollback()
            return describe_job(session, answered, reused=True)
        row = Job(
            id=uuid.uuid4().hex,
            kind=kind,
            state="queued",
            target=target,
            queue=definition.queue_for(spec),
            spec=document,
            inputs=[item.model_dump(mode="json") for item in inputs],
            idempotency_key=key,
            alias=alias,
            message=message,
            created_by=caller.actor,
            request_id=caller.request_id,
            created_at=utcnow(),
        )
        append_log(
            row,
            f"submitted; {summary}"
            + ", ".join(f"{item.ref} -> {item.repository}@{item.version}" for item in inputs),
        )
        session.add(row)
        record_event(
            session,
            caller,
            definition.events.submit,
            repository=target,
            target=job_target(row.id),
            after={
                "job": row.id,
                **(event or {}),
                "inputs": [
                    {"repository": i.repository, "version": i.version, "digest": i.digest}
                    for i in inputs
                ],
                "idempotency_key": key,
            },
        )
    session.refresh(row)
    queue.enqueue(row.id, row.queue)
    return describe_job(session, row)


def find_job(session: Session, job_id: str, visible: Visibility = EVERYTHING) -> Job:
    """The job; one whose target the caller may not read is as absent as a missing one."""
    row = session.get(Job, job_id)
    if row is None or not visible.repository(row.target):
        raise JobNotFound(f"there is no job {job_id!r}; list jobs with `lorry jobs`")
    return row


def get_job(session: Session, job_id: str, visible: Visibility = EVERYTHING) -> JobOut:
    return describe_job(session, find_job(session, job_id, visible))


def list_jobs(
    session: Session,
    *,
    state: str | None = None,
    repository: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
    visible: Visibility = EVERYTHING,
) -> JobList:
    """Jobs matching the filters, newest first; ``visible`` keeps only jobs whose target the
    caller may read."""
    conditions: list[Any] = [visible.where(col(Job.target), repository=True)]
    if state is not None:
        if state not in JOB_STATES:
            raise InvalidInput(f"unknown job state {state!r}; use one of {', '.join(JOB_STATES)}")
        conditions.append(col(Job.state) == state)
    if repository is not None:
        conditions.append(col(Job.target) == repository)
    if kind is not None:
        conditions.append(col(Job.kind) == kind)
    total = session.exec(select(func.count()).select_from(Job).where(*conditions)).one()
    rows = session.exec(
        select(Job)
        .where(*conditions)
        .order_by(col(Job.created_at).desc(), col(Job.id))
        .limit(limit)
        .offset(offset)
    ).all()
    return JobList(items=[describe_job(session, row) for row in rows], total=total)


def _lock_job(session: Session, job_id: str) -> Job:
    """The job row, locked for the session's write transaction."""
    row = session.exec(select(Job).where(Job.id == job_id).with_for_update()).first()
    if row is None:
        raise JobNotFound(f"there is no job {job_id!r}; list jobs with `lorry jobs`")
    return row


def finish_cancelled(session: Session, row: Job, caller: Caller, reason: str) -> None:
    """Mark a job cancelled and audit it, in the session's transaction."""
    row.state = "cancelled"
    row.finished_at = utcnow()
    append_log(row, reason)
    session.add(row)
    record_event(
        session,
        caller,
        job_action(row.kind, "cancel"),
        repository=row.target,
        target=job_target(row.id),
        after={"job": row.id, "state": "cancelled", "progress": row.progress_done},
    )


def cancel_job(
    session: Session,
    caller: Caller,
    job_id: str,
    check_access: Callable[[str, str], None] | None = None,
    visible: Visibility = EVERYTHING,
) -> JobOut:
    """Cancel a queued job at once; ask a running one to stop after its current module."""
    target = find_job(session, job_id, visible).target
    if check_access is not None:
        check_access(WRITE, target.split("/", 1)[0])
    with write_transaction(session):
        row = _lock_job(session, job_id)
        if row.state in FINISHED_STATES:
            raise Conflict(f"job {job_id} already {row.state}; only queued or running jobs cancel")
        if row.state == "queued":
            finish_cancelled(session, row, caller, f"cancelled by {caller.actor} while queued")
        else:
            row.cancel_requested = True
            append_log(row, f"cancellation requested by {caller.actor}")
            session.add(row)
    session.refresh(row)
    return describe_job(session, row)


def queued_job_ids(engine: Engine, older_than_s: float = 0.0) -> list[tuple[str, str]]:
    """``(job id, queue)`` of the queued jobs submitted ``older_than_s`` ago, oldest first."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    with Session(engine) as session:
        rows = session.exec(
            select(Job.id, Job.queue)
            .where(Job.state == "queued", col(Job.created_at) <= cutoff)
            .order_by(col(Job.created_at))
        ).all()
    return [(job_id, queue) for job_id, queue in rows]


def recover_stale_jobs(engine: Engine, settings: Settings) -> list[tuple[str, str]]:
    """Requeue (or fail, after ``job_max_attempts`` runs) jobs whose process stopped.

    A running job's process writes ``heartbeat_at`` every ``job_heartbeat_s``; one
    silent for ``job_stale_after_s`` was orphaned by a process that died or hung.
    Returns ``(job id, queue)`` of the requeued jobs, for the caller to enqueue.
    """
    cutoff = utcnow() - timedelta(seconds=settings.job_stale_after_s)
    requeued: list[tuple[str, str]] = []
    with Session(engine) as session:
        with write_transaction(session):
            rows = session.exec(
                select(Job)
                .where(Job.state == "running", col(Job.heartbeat_at) < cutoff)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                silent = (
                    f"its process ({row.worker}) stopped: no heartbeat since {row.heartbeat_at}"
                )
                if row.cancel_requested:
                    finish_cancelled(session, row, SYSTEM, f"{silent}; it had been cancelled")
                elif row.attempts < settings.job_max_attempts:
                    row.state = "queued"
                    row.worker = None
                    append_log(row, f"{silent}; queued again (attempt {row.attempts + 1})")
                    requeued.append((row.id, row.queue))
                else:
                    _fail_orphan(session, row, silent)
                session.add(row)
    for job_id, _queue in requeued:
        logger.warning("job %s was orphaned by a dead process; queued again", job_id)
    return requeued


def _fail_orphan(session: Session, row: Job, silent: str) -> None:
    row.state = "failed"
    row.error_code = "worker_lost"
    row.error_message = (
        f"{silent}; the job ran {row.attempts} time(s) (LORRY_JOB_MAX_ATTEMPTS) and was "
        "not retried again. Submit it again to retry"
    )
    row.finished_at = utcnow()
    append_log(row, row.error_message)
    record_event(
        session,
        SYSTEM,
        job_action(row.kind, "fail"),
        repository=row.target,
        target=job_target(row.id),
        after={"job": row.id, "state": "failed", "error": row.error_code},
    )
