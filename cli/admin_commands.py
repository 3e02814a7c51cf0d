"""``lorry audit verify``, ``lorry alias at`` and ``lorry gc``.

``register`` must run after ``registry_commands.register``: it turns the
``audit`` command into a group whose bare form still queries the log (same
options) and adds ``verify``, and it adds ``at`` to the ``alias`` group.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer
from typer.models import CommandInfo

from cli import registry_commands
from cli.alias_commands import alias_app
from cli.common import (
    JsonOption,
    RegistryOption,
    echo_json,
    fail,
    parse_reference,
    parse_time,
    registry_client,
    stdout,
)
from cli.token_commands import LocalOption

EXIT_TAMPERED = 2


def verify(
    local: LocalOption = False, json_out: JsonOption = False, registry: RegistryOption = None
) -> None:
    """Walk the audit hash chain; name the first event that was edited, removed or reordered.

    Exits 2 when the chain is broken. Keep the printed head hash somewhere else:
    someone with write access to the database could rewrite the whole chain.
    """
    if local:
        from cli.token_commands import _local_session
        from registry.services.audit_chain import verify_chain
        from registry.trust_schemas import AuditVerification

        with _local_session() as session:
            chain = verify_chain(session)
        report: dict[str, Any] = AuditVerification.model_validate(
            {
                "ok": chain.ok,
                "events": chain.events,
                "head_hash": chain.head_hash,
                "head_event_id": chain.head_event_id,
                "problem": None
                if chain.problem is None
                else {
                    "kind": chain.problem.kind,
                    "event_id": chain.problem.event_id,
                    "message": chain.problem.message,
                },
            }
        ).model_dump(mode="json")
    else:
        with registry_client(registry) as client:
            report = client.request("GET", "/api/v1/audit/verify").json()
    if json_out:
        echo_json(report)
    elif report["ok"]:
        stdout.print(
            f"[green]audit chain intact[/]: {report['events']} events, head event "
            f"{report['head_event_id']} hash {report['head_hash']}"
        )
    else:
        problem = report["problem"]
        stdout.print(f"[bold red]audit chain broken[/] ({problem['kind']}): {problem['message']}")
    if not report["ok"]:
        raise typer.Exit(EXIT_TAMPERED)


def alias_at(
    repository: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME")],
    alias: Annotated[str, typer.Argument(metavar="ALIAS")],
    time: Annotated[
        str, typer.Argument(metavar="TIME", help="ISO 8601 time or a duration back: 2h, 7d.")
    ],
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """What ALIAS of NAMESPACE/NAME pointed to at TIME (from the audit log)."""
    repo = parse_reference(repository, allow_ref=False)[0]
    moment = parse_time(time, "TIME")
    with registry_client(registry) as client:
        answer = client.request(
            "GET", f"/api/v1/repos/{repo}/aliases/{alias}/at", params={"time": moment}
        ).json()
    if json_out:
        echo_json(answer)
        return
    if answer["version"] is None:
        stdout.print(f"{repo}@{alias} did not exist at {answer['time']}")
        return
    stdout.print(
        f"{repo}@{alias} pointed to version {answer['version']} ({answer['digest']}) at "
        f"{answer['time']}; moved there {answer['since']} by {answer['actor']}"
        + (f": {answer['reason']}" if answer["reason"] else "")
    )


def gc(
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete them (default: only list them).")
    ] = False,
    grace_minutes: Annotated[
        int | None,
        typer.Option(
            "--grace-minutes",
            min=0,
            help="Keep unreferenced blobs younger than this (default LORRY_GC_GRACE_MINUTES).",
        ),
    ] = None,
    local: LocalOption = False,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """List blobs that no version references; with --delete, delete them.

    Blobs uploaded within the grace period are kept: a push may be about to
    commit a version that references them. Also lists (and with --delete removes)
    the upload spool files and job directories that crashed processes left in
    LORRY_HOME/tmp; never one that a live upload or job still uses.
    """
    if local:
        from cli.token_commands import _local_caller, _local_session
        from registry.config import Settings
        from registry.errors import LorryError
        from registry.services.gc import collect_garbage
        from registry.storage import open_blob_store

        settings = Settings()
        try:
            with _local_session() as session:
                report: dict[str, Any] = collect_garbage(
                    session,
                    open_blob_store(settings),
                    _local_caller(),
                    delete_blobs=delete,
                    grace_minutes=settings.gc_grace_minutes
                    if grace_minutes is None
                    else grace_minutes,
                    scratch_dir=settings.tmp_dir,
                ).model_dump(mode="json")
        except LorryError as exc:
            fail(exc.message, exc.code)
    else:
        params = {} if grace_minutes is None else {"grace_minutes": grace_minutes}
        with registry_client(registry) as client:
            report = client.request(
                "POST" if delete else "GET", "/api/v1/gc", params=params, timeout=None
            ).json()
    if json_out:
        echo_json(report)
        return
    for blob in report["unreferenced"]:
        mark = "deleted" if blob["sha256"] in report["deleted"] else "unreferenced"
        typer.echo(f"{mark}  sha256:{blob['sha256']}  {blob['size']} bytes")
    scratch_mark = "removed" if not report["dry_run"] else "left by a crash"
    for entry in report.get("scratch", []):
        typer.echo(f"{scratch_mark}  tmp/{entry['name']}  {entry['bytes']} bytes")
    summary = (
        f"{len(report['unreferenced'])} unreferenced blob(s), {report['bytes']} bytes; "
        f"{report['kept_recent']} younger than {report['grace_minutes']} min kept; "
        f"{len(report.get('scratch', []))} scratch entr(ies) left by crashes, "
        f"{report.get('scratch_bytes', 0)} bytes"
    )
    if report["dry_run"]:
        summary += "; nothing deleted (dry run: add --delete)"
    else:
        summary += f"; {len(report['deleted'])} deleted"
    stdout.print(summary)


def _audit_group() -> typer.Typer:
    """``lorry audit [OPTIONS]`` (the query, as before) plus ``lorry audit verify``."""
    query = registry_commands.audit
    signature = inspect.signature(query, eval_str=True)
    context = inspect.Parameter(
        "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
    )

    def callback(ctx: typer.Context, **options: Any) -> None:
        if ctx.invoked_subcommand is None:
            query(**options)

    callback.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[context, *signature.parameters.values()]
    )
    callback.__annotations__ = {
        "ctx": typer.Context,
        **{name: p.annotation for name, p in signature.parameters.items()},
    }
    callback.__doc__ = query.__doc__
    group = typer.Typer(invoke_without_command=True, help=query.__doc__)
    group.callback()(callback)
    group.command("verify")(verify)
    return group


def register(app: typer.Typer) -> None:
    app.registered_commands = [
        command
        for command in app.registered_commands
        if not (isinstance(command, CommandInfo) and command.name == "audit")
    ]
    app.add_typer(_audit_group(), name="audit")
    if not any(command.name == "at" for command in alias_app.registered_commands):
        alias_app.command("at")(alias_at)
    app.command("gc")(gc)
