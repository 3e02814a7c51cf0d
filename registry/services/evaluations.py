"""Submitting evaluation jobs: resolve and pin the adapter, its base model and the task
source, check the tasks, record the job (``registry.services.job_kinds.eval`` runs it).

Everything a job needs is checked here, before it exists: the version is an adapter,
the base is a model repository with a ``config.json`` and, when the adapter links a base
model, that base's repository; the task folder (uploaded, or a version's ``eval_tasks/``)
defines every named task and stays under ``LORRY_EVAL_TASKS_MAX_BYTES``. A refusal is a
422 that writes nothing. The same checks plan a recipe's ``evaluate`` entries at a
composition's submit (``plan_recipe_evaluations``), before the version they judge exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, col, select

from registry.config import Settings
from registry.errors import InvalidEvalTasks, InvalidInput
from registry.schemas.compose import JobInput, JobOut
from registry.schemas.eval_jobs import EvalRunRequest, EvaluationStep
from registry.services.audit import Caller
from registry.services.base_models import automatic_link, parse_base_reference
from registry.services.eval_tasks import (
    TASKS_FOLDER,
    check_size,
    check_task_path,
    check_tasks,
)
from registry.services.job_kinds.eval import EvalSpec, TaskFile
from registry.services.job_queue import JobQueue
from registry.services.jobs import create_job
from registry.services.names import check_alias_name, repository_id
from registry.services.policies import check_alias_change
from registry.services.principals import READ
from registry.services.refs import resolve_ref
from registry.services.repositories import find_repository
from registry.storage.base import BlobStore
from registry.tables import Repository, Version, VersionFile

__all__ = ["plan_recipe_evaluations", "recipe_evaluation_jobs", "submit_evaluation"]

AccessCheck = Callable[[str, str], None]
_CONFIG = "config.json"


def _pin(repository: str, version: Version) -> str:
    return f"{repository}@sha256:{version.digest}"


def _input(ref: str, repository: str, version: Version, role: str) -> JobInput:
    return JobInput(
        ref=ref,
        repository=repository,
        version=version.number,
        digest=f"sha256:{version.digest}",
        role=role,  # type: ignore[arg-type]
    )


def _linked_base(session: Session, version: Version) -> str | None:
    """The repository (``ns/name``) of the adapter's base model in this registry, if linked."""
    link = version.base_model_link or automatic_link(session, version.base_model)
    if not link:
        return None
    namespace, name, _ref = parse_base_reference(link)
    return repository_id(namespace, name)


def _resolve_base(
    session: Session,
    requested: str | None,
    linked: str | None,
    where: str,
    check_access: AccessCheck | None,
) -> tuple[str, JobInput]:
    reference = requested or linked
    if reference is None:
        raise InvalidInput(
            f"{where} links no base model of this registry; name the model it was trained "
            "on with `--base NAMESPACE/NAME[@REF]` (`base` in the request)",
            field="base",
        )
    namespace, name, ref = parse_base_reference(reference)
    base_id = repository_id(namespace, name)
    if linked is not None and base_id != linked:
        raise InvalidInput(
            f"{where} is an adapter of {linked}, not of {base_id}: evaluating it on another "
            f"base model measures nothing; leave base out or give {linked}[@REF]",
            field="base",
        )
    if check_access is not None:
        check_access(READ, namespace)
    repository = find_repository(session, namespace, name)
    if repository.kind != "model":
        raise InvalidInput(
            f"base {reference!r}: {base_id} holds {repository.kind}s; the base of an "
            "evaluation is a model repository",
            field="base",
        )
    version = resolve_ref(session, repository, ref or "latest")
    if session.get(VersionFile, (version.id, _CONFIG)) is None:
        raise InvalidInput(
            f"base {base_id}@{version.number} has no {_CONFIG}; push the model directory as "
            "transformers saves it (with its tokenizer files)",
            field="base",
        )
    return _pin(base_id, version), _input(reference, base_id, version, "base")


def _uploaded_tasks(
    files: list[Any], tasks: list[str], settings: Settings
) -> tuple[list[str], list[TaskFile]]:
    texts = {check_task_path(item.path): item.content for item in files}
    check_size(
        sum(len(text.encode("utf-8")) for text in texts.values()), settings.eval_tasks_max_bytes
    )
    wanted = check_tasks(tasks, texts, "the uploaded task folder")
    return wanted, [TaskFile(path=path, content=text) for path, text in texts.items()]


def _registry_tasks(
    session: Session,
    store: BlobStore,
    reference: str,
    tasks: list[str],
    settings: Settings,
    check_access: AccessCheck | None,
) -> tuple[list[str], str, JobInput]:
    namespace, name, ref = parse_base_reference(reference)
    if check_access is not None:
        check_access(READ, namespace)
    repo_id = repository_id(namespace, name)
    version = resolve_ref(session, find_repository(session, namespace, name), ref or "latest")
    where = f"{repo_id}@{version.number}/{TASKS_FOLDER}"
    rows = session.exec(
        select(VersionFile).where(
            VersionFile.version_id == version.id, col(VersionFile.path).startswith(TASKS_FOLDER)
        )
    ).all()
    if not rows:
        raise InvalidEvalTasks(
            f"{repo_id}@{version.number} has no {TASKS_FOLDER} folder; push the task YAML and "
            f"data under {TASKS_FOLDER} in a version, or give a local folder",
            field="tasks_from",
        )
    check_size(sum(row.size for row in rows), settings.eval_tasks_max_bytes)
    texts = {
        row.path.removeprefix(TASKS_FOLDER): b"".join(store.open_range(row.sha256)).decode(
            "utf-8", errors="replace"
        )
        for row in rows
        if row.path.lower().endswith((".yaml", ".yml"))
    }
    wanted = check_tasks(tasks, texts, where)
    return wanted, _pin(repo_id, version), _input(reference, repo_id, version, "tasks")


def _plan(
    session: Session,
    store: BlobStore,
    settings: Settings,
    step: EvaluationStep,
    task_files: list[Any],
    linked: str | None,
    where: str,
    check_access: AccessCheck | None,
) -> tuple[dict[str, Any], list[JobInput]]:
    """The step's spec fields but ``source`` (pinned) and its inputs but the adapter."""
    if (step.tasks_from is None) == (not task_files):
        raise InvalidEvalTasks(
            "give the tasks' folder once: a local directory uploaded with the job "
            "(`--tasks-from DIR`, `task_files`) or a registry version "
            "(`--tasks-from NAMESPACE/NAME@REF`, `tasks_from`)",
            field="tasks_from",
        )
    base, base_input = _resolve_base(session, step.base, linked, where, check_access)
    fields: dict[str, Any] = {
        "base": base,
        "limit": step.limit,
        "num_fewshot": step.num_fewshot,
        "queue": step.queue,
        "promote": step.promote,
    }
    inputs = [base_input]
    if step.tasks_from is not None:
        tasks, pinned, tasks_input = _registry_tasks(
            session, store, step.tasks_from, step.tasks, settings, check_access
        )
        fields.update(tasks=tasks, tasks_from=pinned)
        inputs.append(tasks_input)
    else:
        tasks, files = _uploaded_tasks(task_files, step.tasks, settings)
        fields.update(tasks=tasks, task_files=files)
    if step.promote is not None:
        check_alias_name(step.promote)
    return fields, inputs


def _adapter(session: Session, namespace: str, name: str, ref: str) -> tuple[Repository, Version]:
    repository = find_repository(session, namespace, name)
    if repository.kind != "adapter":
        raise InvalidInput(
            f"{repository_id(namespace, name)} holds {repository.kind}s; an evaluation job "
            "runs an adapter on its base model (record a model's results with `lorry eval add`)"
        )
    return repository, resolve_ref(session, repository, ref)


def submit_evaluation(
    session: Session,
    caller: Caller,
    queue: JobQueue,
    store: BlobStore,
    namespace: str,
    name: str,
    ref: str,
    request: EvalRunRequest,
    check_access: AccessCheck | None = None,
    *,
    settings: Settings,
) -> JobOut:
    """Record an evaluation job of ``namespace/name@ref`` (or find the identical one that
    is queued, running or done) and enqueue it."""
    repository, version = _adapter(session, namespace, name, ref)
    target = repository_id(namespace, name)
    where = f"{target}@{version.number}"
    fields, inputs = _plan(
        session,
        store,
        settings,
        request,
        request.task_files,
        _linked_base(session, version),
        where,
        check_access,
    )
    if request.promote is not None:
        check_alias_change(session, caller, target, request.promote, request.message)
    spec = EvalSpec(source=_pin(target, version), **fields)
    return create_job(
        session,
        caller,
        queue,
        kind="eval",
        spec=spec,
        target=target,
        inputs=[_input(f"{target}@{ref}", target, version, "input"), *inputs],
        summary="evaluate ",
        event={"tasks": spec.tasks, "promote": spec.promote},
        alias=spec.promote,
        message=request.message,
    )


def _step(index: int, raw: Any) -> EvaluationStep:
    try:
        return EvaluationStep.model_validate(raw)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in (f"evaluate[{index}]", *problem["loc"]))
        raise InvalidInput(
            f"{where}: {problem['msg']}; an evaluation is {{tasks: [...], base: NS/NAME, "
            "tasks_from: NS/NAME@REF, limit, num_fewshot, queue: gpu|cpu|any, promote: ALIAS}",
            field=where,
        ) from None


def plan_recipe_evaluations(
    session: Session,
    caller: Caller,
    store: BlobStore,
    settings: Settings,
    target: str,
    steps: list[Any],
    message: str | None,
    check_access: AccessCheck | None,
) -> list[dict[str, Any]]:
    """A recipe's ``evaluate`` entries checked and pinned at the composition's submit: each
    a document with the eval spec's fields but ``source`` and its ``inputs``."""
    planned = []
    for index, raw in enumerate(steps):
        step = _step(index, raw)
        if step.tasks_from is None:
            raise InvalidEvalTasks(
                f"evaluate[{index}] names no tasks_from; a recipe's evaluation takes its tasks "
                "from a registry version (tasks_from: NAMESPACE/NAME@REF with an eval_tasks/ "
                "folder)",
                field=f"evaluate[{index}].tasks_from",
            )
        if step.base is None:
            raise InvalidInput(
                f"evaluate[{index}] names no base; give the model the composed adapter runs on "
                "(base: NAMESPACE/NAME[@REF])",
                field=f"evaluate[{index}].base",
            )
        fields, inputs = _plan(
            session, store, settings, step, [], None, f"evaluate[{index}]", check_access
        )
        if step.promote is not None:
            check_alias_change(session, caller, target, step.promote, message)
        planned.append({**fields, "inputs": [item.model_dump(mode="json") for item in inputs]})
    return planned


def recipe_evaluation_jobs(
    session: Session,
    caller: Caller,
    queue: JobQueue,
    target: str,
    version: Version,
    planned: list[dict[str, Any]],
    message: str | None,
) -> list[JobOut]:
    """The evaluation jobs a composition's recipe asked for, of the version it published."""
    jobs = []
    source = _input(f"{target}@{version.number}", target, version, "input")
    for entry in planned:
        fields = {key: value for key, value in entry.items() if key != "inputs"}
        spec = EvalSpec(source=_pin(target, version), **fields)
        jobs.append(
            create_job(
                session,
                caller,
                queue,
                kind="eval",
                spec=spec,
                target=target,
                inputs=[source, *(JobInput(**item) for item in entry["inputs"])],
                summary="evaluate (the recipe's evaluate) ",
                event={"tasks": spec.tasks, "promote": spec.promote},
                alias=spec.promote,
                message=message,
            )
        )
    return jobs
