"""`lorry jobs`, `lorry job`, `lorry lineage`, `lorry derived` (REST clients) and
`lorry worker` (runs composition jobs; it imports the registry, like `serve`)."""

from __future__ import annotations

import logging
import signal
import threading
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from cli.common import (
    JsonOption,
    RegistryOption,
    echo_json,
    fail,
    parse_reference,
    registry_client,
    stdout,
)
from cli.remote_compose import follow_job, print_outcome

__all__ = ["register"]


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


_STATE_STYLE = {
    "queued": "yellow",
    "running": "blue",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def _state(state: str) -> str:
    return f"[{_STATE_STYLE.get(state, 'white')}]{state}[/]"


def _progress(job: dict[str, Any]) -> str:
    progress = job["progress"]
    return f"{progress['done']}/{progress['total']}" if progress["total"] else "-"


def _result(job: dict[str, Any]) -> str:
    result = job.get("result")
    if result:
        return f"{result['repository']}@{result['version']}"
    error = job.get("error")
    return escape(error["code"]) if error else "-"


def _jobs_table(items: list[dict[str, Any]], total: int) -> Table:
    table = Table(title=f"{len(items)} of {total} jobs", title_justify="left")
    for column in ("id", "state", "target", "progress", "result", "created", "by"):
        table.add_column(column, no_wrap=column in ("id", "created"))
    for job in items:
        table.add_row(
            job["id"],
            _state(job["state"]),
            escape(job["target"]),
            _progress(job),
            _result(job),
            job["created_at"][:19].replace("T", " "),
            escape(job["created_by"]),
        )
    return table


def _job_panel(job: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None, title=f"job {job['id']}", title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    duration = job.get("duration_s")
    rows = [
        ("state", _state(job["state"])),
        ("target", escape(job["target"])),
        ("progress", f"{_progress(job)} {escape(job['progress']['module'] or '')}"),
        ("result", _result(job)),
        ("attempts", str(job["attempts"])),
        ("worker", escape(job.get("worker") or "-")),
        ("created", f"{job['created_at']} by {escape(job['created_by'])}"),
        ("duration", "-" if duration is None else f"{duration:.1f} s"),
        (
            "inputs",
            "\n".join(
                f"{escape(i['ref'])} -> {escape(i['repository'])}@{i['version']} ({i['digest']})"
                for i in job["inputs"]
            ),
        ),
    ]
    if job.get("error"):
        rows.append(("error", escape(f"{job['error']['code']}: {job['error']['message']}")))
    rows.append(("log", "\n".join(escape(f"{e['at'][:19]} {e['message']}") for e in job["log"])))
    for name, value in rows:
        table.add_row(name, value)
    return table


def jobs_command(
    state: Annotated[
        JobState | None, typer.Option("--state", help="Only jobs in this state.")
    ] = None,
    repository: Annotated[
        str | None, typer.Option("--repository", "-r", help="Only jobs publishing to NS/NAME.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """List composition jobs, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if state is not None:
        params["state"] = state.value
    if repository is not None:
        params["repository"] = repository
    with registry_client(registry) as client:
        page = client.request("GET", "/api/v1/jobs", params=params).json()
    if as_json:
        echo_json(page)
        return
    stdout.print(_jobs_table(page["items"], page["total"]))


def job_command(
    first: Annotated[str, typer.Argument(metavar="ID | cancel", help="A job id, or `cancel`.")],
    job_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="With `cancel`: the job to cancel.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")] = False,
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a job (`lorry job ID [--wait]`) or cancel it (`lorry job cancel ID`).

    A queued job is cancelled at once; a running one stops after its current module.
    """
    with registry_client(registry) as client:
        if first == "cancel":
            if job_id is None:
                fail("name the job to cancel: `lorry job cancel ID`")
            job = client.request("POST", f"/api/v1/jobs/{job_id}/cancel").json()
            if as_json:
                echo_json(job)
            elif job["state"] == "cancelled":
                stdout.print(f"Job {job['id']} cancelled")
            else:
                stdout.print(f"Job {job['id']} will stop after its current module")
            return
        if job_id is not None:
            fail(f"unexpected argument {job_id!r}; use `lorry job ID` or `lorry job cancel ID`")
        job = client.request("GET", f"/api/v1/jobs/{first}").json()
        if wait:
            job = follow_job(client, job, bar=not as_json)
    if as_json:
        echo_json(job)
        return
    stdout.print(_job_panel(job))
    if wait:
        print_outcome(job)


def _add_parents(tree: Tree, node: dict[str, Any]) -> None:
    for parent in node.get("parents", []):
        weight = "" if parent.get("weight") is None else f" weight {parent['weight']:g}"
        role = " (base model)" if parent.get("role") == "base" else ""
        label = (
            f"[cyan]{escape(parent['repository'])}@{parent['version']}[/]{weight}{role} "
            f"[dim]{parent['digest'][:19]}[/]"
        )
        branch = tree.add(label)
        sub = parent.get("lineage")
        if sub:
            if sub.get("method"):
                branch.label = f"{label} [bold]{escape(sub['method'])}[/]"
            _add_parents(branch, sub)


def lineage_command(
    reference: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME[@REF]")],
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what a version was composed from, as a tree."""
    repository, ref = parse_reference(reference, allow_ref=True)
    path = f"/api/v1/repos/{repository}/versions/{quote(ref or 'latest', safe=':')}/lineage"
    with registry_client(registry) as client:
        node = client.request("GET", path).json()
    if as_json:
        echo_json(node)
        return
    method = f" [bold]{escape(node['method'])}[/]" if node.get("method") else ""
    tree = Tree(f"[cyan]{escape(node['repository'])}@{node['version']}[/]{method}")
    if not node["parents"]:
        tree.add("[dim]pushed, not composed[/]")
    _add_parents(tree, node)
    stdout.print(tree)


def derived_command(
    reference: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME@REF")],
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the versions composed from a version (transitively) and the aliases on them."""
    repository, ref = parse_reference(reference, allow_ref=True)
    path = f"/api/v1/repos/{repository}/versions/{quote(ref or 'latest', safe=':')}/derived"
    with registry_client(registry) as client:
        page = client.request("GET", path).json()
    if as_json:
        echo_json(page)
        return
    source = page["source"]
    table = Table(
        title=f"{len(page['items'])} version(s) derived from "
        f"{source['repository']}@{source['version']}",
        title_justify="left",
    )
    for column in ("version", "aliases", "via", "depth", "digest"):
        table.add_column(column)
    for item in page["items"]:
        table.add_row(
            f"{escape(item['repository'])}@{item['version']}",
            escape(", ".join(item["aliases"]) or "-"),
            escape(item["via"]),
            str(item["depth"]),
            item["digest"][:19],
        )
    stdout.print(table)


def worker_command(
    gpu: Annotated[bool, typer.Option("--gpu", help="Take only GPU and device-auto jobs.")] = False,
    cpu: Annotated[bool, typer.Option("--cpu", help="Take only CPU and device-auto jobs.")] = False,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, help="Jobs at once (default LORRY_JOB_THREADS)."),
    ] = None,
) -> None:
    """Run composition jobs from the PostgreSQL queue until stopped (SIGTERM / Ctrl-C).

    Start any number of workers, on any machines that reach the same database and
    blob store (LORRY_DATABASE_URL, LORRY_BLOB_URL, LORRY_S3_*). A job whose
    worker dies is retried by another worker once its heartbeat is stale.
    """
    from registry.config import Settings
    from registry.db import create_engine_for, ensure_migrated
    from registry.errors import LorryError
    from registry.jobs import open_job_queue, queues_for_worker
    from registry.jobs.checkpointing import CheckpointScheduler
    from registry.jobs.outbox import OutboxWorker
    from registry.services.audit_checkpoints import CheckpointSetup
    from registry.storage import open_blob_store

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()
    if concurrency is not None:
        settings.job_threads = concurrency
    engine = create_engine_for(settings)
    if engine.dialect.name == "sqlite":
        fail(
            "`lorry worker` shares jobs through PostgreSQL; on the embedded SQLite default "
            "`lorry serve` runs the jobs itself. Set LORRY_DATABASE_URL to a PostgreSQL database"
        )
    queues = queues_for_worker(gpu=gpu, cpu=cpu)
    if gpu and not cpu:
        import torch

        if not torch.cuda.is_available():
            fail(
                "--gpu: this machine has no CUDA device that torch can use; "
                "run `lorry worker --cpu` here"
            )
    try:
        ensure_migrated(engine)
        store = open_blob_store(settings)
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        checkpoints = CheckpointScheduler(
            engine,
            CheckpointSetup.from_settings(settings, store),
            settings.audit_checkpoint_interval_s,
        )
        queue = open_job_queue(engine, store, settings, run_jobs=True, queues=queues)
        queue.start()
        checkpoints.start()
        outbox = OutboxWorker(engine, settings)
        outbox.start()
    except LorryError as exc:
        fail(exc.message, exc.code)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    typer.echo(f"worker taking queues {', '.join(queues)}; stop with Ctrl-C", err=True)
    try:
        stop.wait()
    finally:
        checkpoints.stop()
        outbox.stop()
        queue.stop()
        engine.dispose()


def register(app: typer.Typer) -> None:
    """Add jobs, job, lineage, derived and worker to the `lorry` app."""
    app.command("jobs")(jobs_command)
    app.command("job")(job_command)
    app.command("lineage")(lineage_command)
    app.command("derived")(derived_command)
    app.command("worker")(worker_command)
