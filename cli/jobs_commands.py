"""`lorry jobs`, `lorry job`, `lorry lineage`, `lorry derived` (REST clients; `lorry worker`,
which runs the jobs, is in `cli.server_commands`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from cli.common import (
    JsonOption,
    LimitOption,
    RegistryOption,
    echo_json,
    fail,
    parse_reference,
    registry_client,
    stdout,
)
from cli.remote_compose import follow_job, print_outcome
from cli.tables import Column, FittedTable

__all__ = ["register"]


class JobKind(StrEnum):
    compose = "compose"
    export = "export"
    eval = "eval"


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


def _jobs_table(items: list[dict[str, Any]], total: int, kind: str | None = None) -> FittedTable:
    """The jobs; a job's kind is in `lorry job ID` (and `--kind` filters), which keeps the
    table's key columns and its time and author within 120 columns."""
    table = FittedTable(
        f"{len(items)} of {total} {kind + ' ' if kind else ''}jobs",
        [
            Column("id", key=True),
            Column("state", key=True),
            Column("target", key=True),
            Column("progress", drop=3),
            Column("result", drop=4),
            Column("created", drop=2),
            Column("by", drop=1),
        ],
    )
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
        ("kind", job.get("kind", "compose")),
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
    kind: Annotated[
        JobKind | None,
        typer.Option("--kind", help="Only compositions, exports or evaluation runs."),
    ] = None,
    limit: LimitOption = 50,
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """List jobs (compositions, exports, evaluation runs), newest first."""
    params: dict[str, Any] = {"limit": limit}
    if state is not None:
        params["state"] = state.value
    if kind is not None:
        params["kind"] = kind.value
    if repository is not None:
        params["repository"] = repository
    with registry_client(registry) as client:
        page = client.request("GET", "/api/v1/jobs", params=params).json()
    if as_json:
        echo_json(page)
        return
    stdout.print(_jobs_table(page["items"], page["total"], kind.value if kind else None))


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
    stdout.print(_derived_table(page))


def _derived_table(page: dict[str, Any]) -> FittedTable:
    source = page["source"]
    table = FittedTable(
        f"{len(page['items'])} version(s) derived from "
        f"{escape(source['repository'])}@{source['version']}",
        [
            Column("version", key=True, style="bold cyan"),
            Column("aliases", key=True),
            Column("via", drop=2),
            Column("depth", drop=1, justify="right"),
            Column("digest", drop=3),
        ],
    )
    for item in page["items"]:
        table.add_row(
            f"{escape(item['repository'])}@{item['version']}",
            escape(", ".join(item["aliases"]) or "-"),
            escape(item["via"]),
            str(item["depth"]),
            item["digest"][:19],
        )
    return table


def register(app: typer.Typer) -> None:
    """Add jobs, job, lineage and derived to the `lorry` app."""
    app.command("jobs")(jobs_command)
    app.command("job")(job_command)
    app.command("lineage")(lineage_command)
    app.command("derived")(derived_command)
