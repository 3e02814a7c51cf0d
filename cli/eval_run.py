"""``lorry eval run``: have the registry run lm-evaluation-harness on a version (a job)
and record its results; with ``--promote``, move an alias that its gates allow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from cli.common import (
    JsonOption,
    RegistryOption,
    echo_json,
    fail,
    is_reference,
    parse_reference,
    registry_client,
    stderr,
    stdout,
)
from cli.remote_compose import FINISHED, follow_job

__all__ = ["eval_run"]

_DATA_SUFFIXES = (".yaml", ".yml", ".json", ".jsonl", ".txt", ".py")


def _task_files(directory: Path) -> list[dict[str, str]]:
    """The task folder as the API takes it: every YAML, JSON(L), text and Python file."""
    files = [
        {"path": path.relative_to(directory).as_posix(), "content": path.read_text("utf-8")}
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.suffix.lower() in _DATA_SUFFIXES
    ]
    if not files:
        raise typer.BadParameter(
            f"{directory} holds no task files (*.yaml with their *.json/*.jsonl data)",
            param_hint="'--tasks-from'",
        )
    return files


def _request(
    tasks: list[str],
    tasks_from: str,
    base: str | None,
    limit: int | None,
    num_fewshot: int | None,
    queue: str,
    promote: str | None,
    reason: str | None,
) -> dict[str, Any]:
    names = [name.strip() for item in tasks for name in item.split(",") if name.strip()]
    body: dict[str, Any] = {"tasks": names, "queue": queue}
    folder = Path(tasks_from)
    if folder.is_dir():
        body["task_files"] = _task_files(folder)
    elif is_reference(tasks_from):
        body["tasks_from"] = tasks_from
    else:
        raise typer.BadParameter(
            f"{tasks_from!r} is neither a directory nor a registry reference NAMESPACE/NAME[@REF]",
            param_hint="'--tasks-from'",
        )
    optional = {
        "base": base,
        "limit": limit,
        "num_fewshot": num_fewshot,
        "promote": promote,
        "message": reason,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    return body


def _report(client: Any, job: dict[str, Any], as_json: bool) -> None:
    if job["state"] != "succeeded":
        error = job.get("error") or {}
        reason = f": {error['message']}" if error.get("message") else ""
        fail(f"job {job['id']} {job['state']}{reason}", error.get("code") or job["state"])
    result = job["result"]
    namespace, _, name = result["repository"].partition("/")
    results = client.request(
        "GET",
        f"/api/v1/repos/{quote(namespace, safe='')}/{quote(name, safe='')}/versions/"
        f"{quote(result['digest'], safe=':')}/evals",
    ).json()
    outcome = job["log"][-1]["message"] if job["log"] else ""
    if as_json:
        echo_json({"job": job, "results": results["items"], "outcome": outcome})
        return
    stdout.print(f"[green]Evaluated[/green] {escape(result['repository'])}@{result['version']}")
    for item in results["items"]:
        stderr_part = f" ± {item['stderr']:.4g}" if item["stderr"] is not None else ""
        stdout.print(
            f"  {escape(item['task'])}/{escape(item['metric'])},{escape(item['filter'])}: "
            f"{item['value']:.4g}{stderr_part}"
        )
    stdout.print(escape(outcome))


def eval_run(
    reference: Annotated[
        str, typer.Argument(metavar="NAMESPACE/NAME@REF", help="The adapter version to evaluate.")
    ],
    tasks: Annotated[
        list[str],
        typer.Option(
            "--tasks",
            metavar="TASKS",
            help="lm-eval task (or group) names, comma-separated or repeated.",
        ),
    ],
    tasks_from: Annotated[
        str,
        typer.Option(
            "--tasks-from",
            metavar="DIR|NAMESPACE/NAME[@REF]",
            help="The task YAML and its local data: a directory (uploaded with the job) or a "
            "registry version with an eval_tasks/ folder.",
        ),
    ],
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            metavar="NAMESPACE/NAME[@REF]",
            help="The base model (default: the adapter's linked base model).",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Examples per task (default: all).")
    ] = None,
    num_fewshot: Annotated[int | None, typer.Option("--num-fewshot", min=0)] = None,
    queue: Annotated[
        str,
        typer.Option("--queue", help="gpu (runs on CUDA), cpu or any (the CPU)."),
    ] = "any",
    promote: Annotated[
        str | None,
        typer.Option(
            "--promote",
            metavar="ALIAS",
            help="Point ALIAS at the version once its results are recorded, if its gates pass.",
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="The reason the promotion records.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow the job until it ends.")
    ] = True,
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run lm-evaluation-harness on an adapter version in the registry (a job, offline, on
    local task files) and record its results against the version."""
    repository, ref = parse_reference(reference, allow_ref=True)
    if queue not in ("gpu", "cpu", "any"):
        raise typer.BadParameter("use gpu, cpu or any", param_hint="'--queue'")
    body = _request(tasks, tasks_from, base, limit, num_fewshot, queue, promote, reason)
    namespace, _, name = repository.partition("/")
    url = (
        f"/api/v1/repos/{quote(namespace, safe='')}/{quote(name, safe='')}/versions/"
        f"{quote(ref or 'latest', safe=':')}/evaluations"
    )
    with registry_client(registry) as client:
        job = client.request("POST", url, json=body).json()
        if not wait:
            if as_json:
                echo_json(job)
            else:
                stdout.print(f"Job {job['id']} {job['state']}: `lorry job {job['id']}` follows it")
            return
        if job["state"] not in FINISHED and not as_json:
            stderr.print(f"Job {job['id']} {job['state']}; Ctrl-C stops waiting (not the job)")
        try:
            job = follow_job(client, job, bar=not as_json)
        except KeyboardInterrupt:
            fail(f"stopped waiting; job {job['id']} goes on (`lorry job {job['id']}` follows it)")
        _report(client, job, as_json)
