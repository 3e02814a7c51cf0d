"""The ``eval`` job kind: run lm-evaluation-harness on a version, record its results.

The worker fetches the adapter version, its base model version and the task files
into a scratch directory, runs ``lm_eval.simple_evaluate`` (HF backend, the base as
``pretrained``, the adapter as ``peft``) in a child process with the Hub and datasets
offline (``registry.services.job_kinds.lm_eval_run``), and records the document it
writes against the version with ``record_results(..., source="lm-eval")``: stored
whole, the worker's scratch directories replaced by the registry references they hold.
With ``promote``, the alias then moves through ``point_alias`` (so protected-alias
gates judge the results just recorded); a refused move leaves the alias where it was,
is an ``eval.promotion_refused`` audit event and ends the job's log line.
Submission: ``registry.services.evaluations``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from registry.db import write_transaction
from registry.errors import EvaluationFailed, InvalidEvalTasks, LorryError
from registry.services.aliases import point_alias
from registry.services.audit import Caller, record_event
from registry.services.eval_tasks import TASKS_FOLDER
from registry.services.evals import record_results
from registry.services.job_kinds.base import (
    JobContext,
    JobEvents,
    JobKind,
    JobOutcome,
    canonical_key,
)
from registry.services.job_kinds.lm_eval_run import UNKNOWN_TASK_EXIT
from registry.services.job_kinds.workspace import (
    library_versions,
    materialise,
    pinned_version,
    version_files,
)
from registry.services.names import repository_id
from registry.services.repositories import lock_repository
from registry.storage.scratch import scratch_directory
from registry.tables import Job

__all__ = ["EVENTS", "PROMOTION_REFUSED", "EvalKind", "EvalSpec", "TaskFile"]

EVENTS = JobEvents(
    submit="eval.submit",
    succeed="eval.succeed",
    fail="eval.fail",
    cancel="eval.cancel",
)
PROMOTION_REFUSED = "eval.promotion_refused"
_LIBRARIES = ("lorry", "lm_eval", "torch", "transformers", "peft", "datasets")
_OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
_POLL_S = 0.5
_ERROR_LINES = 15


class TaskFile(BaseModel):
    """A task file uploaded with the job: its path in the task folder and its text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    content: str


class EvalSpec(BaseModel):
    """What an evaluation job runs. References are pinned (``ns/name@sha256:<digest>``);
    the tasks come from ``task_files`` or from ``tasks_from``'s ``eval_tasks/`` folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    base: str
    tasks: list[str]
    tasks_from: str | None = None
    task_files: list[TaskFile] = Field(default_factory=list)
    limit: int | None = None
    num_fewshot: int | None = None
    queue: Literal["gpu", "cpu", "any"] = "any"
    promote: str | None = None

    @property
    def device(self) -> str:
        return "cuda" if self.queue == "gpu" else "cpu"


class EvalKind(JobKind):
    name = "eval"
    events = EVENTS

    def spec_model(self) -> type[BaseModel]:
        return EvalSpec

    def idempotency_key(self, spec: dict[str, Any], target: str) -> str:
        # the evaluated version is pinned in the spec, and the target is its repository
        return canonical_key({"eval": spec})

    def queue_for(self, spec: BaseModel) -> str:
        return str(getattr(spec, "queue", "any"))

    def output_kind(self, spec: dict[str, Any]) -> str:
        return "eval"

    def succeed_details(self, job: Job) -> dict[str, Any]:
        return {"tasks": job.spec["tasks"], "promote": job.spec.get("promote")}

    def execute(self, context: JobContext, job: Job) -> JobOutcome:
        """Evaluate, record the results, then move ``promote`` if the gates allow it."""
        spec = EvalSpec.model_validate(job.spec)
        with scratch_directory(context.settings.tmp_dir, f"eval-{job.id}-") as work:
            adapter, base, tasks = work / "adapter", work / "base", work / "tasks"
            materialise(context.store, version_files(context.engine, spec.source), adapter)
            materialise(context.store, version_files(context.engine, spec.base), base)
            _write_tasks(context, spec, tasks)
            request = {
                "base": str(base),
                "adapter": str(adapter),
                "tasks_dir": str(tasks),
                "tasks": spec.tasks,
                "limit": spec.limit,
                "num_fewshot": spec.num_fewshot,
                "device": spec.device,
                "batch_size": context.settings.eval_batch_size,
            }
            text = _run_lm_eval(context, work, request)
            for local, reference in ((adapter, spec.source), (base, spec.base), (tasks, "tasks")):
                text = text.replace(json.dumps(str(local))[1:-1], reference)
        document = json.loads(text)
        document["lorry"] = {"job": job.id, "libraries": library_versions(_LIBRARIES)}
        caller = Caller(actor=job.created_by, request_id=job.request_id)
        with Session(context.engine) as session, write_transaction(session):
            found, version = pinned_version(session, spec.source)
            repository = lock_repository(session, found.namespace, found.name)
            recorded = record_results(
                session, caller, repository, version, document, source="lm-eval"
            )
            number, digest = version.number, version.digest
        note = f"recorded {len(recorded.results)} results (document {recorded.document_id})"
        if spec.promote is not None:
            note += "; " + _promote(context, job, spec, spec.promote)
        return JobOutcome(number, digest, note)


def _write_tasks(context: JobContext, spec: EvalSpec, tasks: Path) -> None:
    tasks.mkdir(parents=True)
    if spec.tasks_from is not None:
        files = version_files(context.engine, spec.tasks_from, TASKS_FOLDER)
        folder = tasks / "_tasks_from"
        materialise(context.store, files, folder)
        # the version's eval_tasks/ is the task folder: data_files are relative to it
        for path in (folder / TASKS_FOLDER.rstrip("/")).iterdir():
            path.rename(tasks / path.name)
        return
    for item in spec.task_files:
        target = tasks / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(item.content, encoding="utf-8")


def _run_lm_eval(context: JobContext, work: Path, request: dict[str, Any]) -> str:
    """Run lm-eval in a child process (killed if the job is cancelled); its results JSON."""
    request_path, out, log = work / "request.json", work / "results.json", work / "lm-eval.log"
    request_path.write_text(json.dumps(request), encoding="utf-8")
    environment = {
        **os.environ,
        **_OFFLINE,
        "HF_HOME": str(work / "hf-home"),
        "HF_DATASETS_CACHE": str(work / "hf-datasets"),
    }
    command = [sys.executable, "-m", "registry.services.job_kinds.lm_eval_run"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, str(request_path), str(out)],
            cwd=request["tasks_dir"],
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            while process.poll() is None:
                context.report("lm-eval", 0, 1)
                time.sleep(_POLL_S)
        except BaseException:
            process.kill()
            process.wait()
            raise
    tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-_ERROR_LINES:])
    if process.returncode == UNKNOWN_TASK_EXIT:
        raise InvalidEvalTasks(tail.strip().splitlines()[-1], field="tasks")
    if process.returncode != 0:
        raise EvaluationFailed(
            f"lm-evaluation-harness exited with status {process.returncode}; its last lines:\n"
            f"{tail}"
        )
    context.report("lm-eval", 1, 1)
    return out.read_text(encoding="utf-8")


def _promote(context: JobContext, job: Job, spec: EvalSpec, alias: str) -> str:
    """Move ``alias`` to the evaluated version through ``point_alias`` (gates apply); a
    refusal is recorded as its own audit event and returned as the job's note."""
    caller = Caller(actor=job.created_by, request_id=job.request_id)
    reason = job.message or f"evaluated by job {job.id}"
    try:
        with Session(context.engine) as session, write_transaction(session):
            found, version = pinned_version(session, spec.source)
            repository = lock_repository(session, found.namespace, found.name)
            point_alias(session, repository, alias, version, reason, caller)
            return f"{alias} -> {version.number}"
    except LorryError as exc:
        with Session(context.engine) as session, write_transaction(session):
            found, version = pinned_version(session, spec.source)
            repo_id = repository_id(found.namespace, found.name)
            record_event(
                session,
                caller,
                PROMOTION_REFUSED,
                repository=repo_id,
                target=f"{repo_id}@{version.number}",
                after={
                    "job": job.id,
                    "alias": alias,
                    "version": version.number,
                    "error": exc.code,
                    "message": exc.message,
                },
            )
        return f"{alias} not moved: {exc.message}"
