"""``lorry audit``: the query (bare ``lorry audit [OPTIONS]``) and ``verify``,
``checkpoint`` and ``keygen``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from cli import render
from cli.common import (
    ActorOption,
    JsonOption,
    LimitOption,
    OffsetOption,
    RegistryOption,
    SinceOption,
    UntilOption,
    echo_json,
    parse_reference,
    parse_time,
    registry_client,
    stdout,
)
from cli.local import LocalOption, local_registry

__all__ = ["audit_app"]

EXIT_TAMPERED = 2

audit_app = typer.Typer(help="Query the audit log, newest first.")


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    repo: Annotated[
        str | None, typer.Option("--repo", metavar="NAMESPACE/NAME", help="One repository.")
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(
            "--action",
            help=(
                "repository.create, repository.update, version.publish, version.pull, "
                "alias.set or alias.delete."
            ),
        ),
    ] = None,
    actor: ActorOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: LimitOption = 100,
    offset: OffsetOption = 0,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Query the audit log, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    repository = parse_reference(repo, allow_ref=False)[0] if repo else None
    since_iso = parse_time(since, "--since")
    until_iso = parse_time(until, "--until")
    with registry_client(registry) as client:
        page = client.audit(
            repository=repository,
            action=action,
            actor=actor,
            since=since_iso,
            until=until_iso,
            limit=limit,
            offset=offset,
        )
    if json_out:
        echo_json(page)
        return
    stdout.print(render.audit_table(page["items"], page["total"]))


@audit_app.command("verify")
def verify(
    local: LocalOption = False,
    checkpoints: Annotated[
        Path | None,
        typer.Option(
            "--checkpoints",
            help="Check against the checkpoints in this directory (offline; implies --local).",
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="Verifier keys (NAME+KEYID+BASE64 lines) instead of LORRY_AUDIT_PUBLIC_KEYS.",
        ),
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Ask the server for a new walk (admin only).")
    ] = False,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Walk the audit hash chain and check it against the newest signed checkpoints.

    Names the first event that was edited, removed, reordered or inserted, and the
    checkpoint that proves a truncation or a rewrite. Exits 2 when either is found
    or a checkpoint does not verify.
    """
    if local or checkpoints is not None or public_key is not None:
        with local_registry() as database:
            report = database.verify_audit(checkpoints=checkpoints, public_key=public_key)
    else:
        with registry_client(registry) as client:
            params = {"fresh": "true"} if fresh else {}
            report = client.request("GET", "/api/v1/audit/verify", params=params).json()
    if json_out:
        echo_json(report)
    else:
        _print_report(report)
    if not report["ok"]:
        raise typer.Exit(EXIT_TAMPERED)


def _print_report(report: dict[str, Any]) -> None:
    if report["ok"]:
        anchored = "anchored" if report.get("anchored") else "not anchored"
        stdout.print(
            f"[green]audit chain intact[/] ({anchored}): {report['events']} events, head event "
            f"{report['head_event_id']} hash {report['head_hash']}"
        )
    else:
        problem = report["problem"]
        stdout.print(
            f"[bold red]audit chain broken[/] ({problem['kind']}): {escape(problem['message'])}"
        )
    for check in report.get("checkpoints", []):
        color = "green" if check["status"] == "confirmed" else "red"
        where = f"event {check['event_id']}" if check.get("event_id") is not None else ""
        stdout.print(f"  [{color}]{check['status']}[/] {escape(check['location'])} {where}")
    for warning in report.get("warnings", []):
        stdout.print(f"[yellow]warning:[/] {escape(warning)}")
    if report.get("cached"):
        stdout.print(
            f"(result of the walk at {report['verified_at']}; --fresh as admin for a new one)"
        )


@audit_app.command("checkpoint")
def checkpoint(
    local: LocalOption = False, json_out: JsonOption = False, registry: RegistryOption = None
) -> None:
    """Sign the audit chain's head now and write it to every checkpoint target.

    Refuses (and signs nothing) when the log no longer extends the newest checkpoint.
    """
    if local:
        with local_registry() as database:
            result = database.write_checkpoint()
    else:
        with registry_client(registry) as client:
            result = client.request("POST", "/api/v1/audit/checkpoints").json()
    if json_out:
        echo_json(result)
        return
    stdout.print(
        f"checkpoint of {result['size']} events, head event {result['event_id']} hash "
        f"{result['head_hash']}, written to {', '.join(result['written_to'])}"
    )


@audit_app.command("keygen")
def keygen(
    key_file: Annotated[Path, typer.Argument(metavar="KEY_FILE", help="Where to write it.")],
    origin: Annotated[
        str | None,
        typer.Option("--origin", help="The log's name (default LORRY_AUDIT_CHECKPOINT_ORIGIN)."),
    ] = None,
) -> None:
    """Write a new Ed25519 checkpoint signing key (mode 0600) and KEY_FILE.pub, its verifier.

    Keep the key where the database's holders cannot read it; give the .pub line to
    whoever verifies (LORRY_AUDIT_PUBLIC_KEYS, or `lorry audit verify --public-key`).
    """
    public = key_file.with_name(key_file.name + ".pub")
    with local_registry() as keys:
        vkey, name = keys.generate_signing_key(key_file, origin)
    public.write_text(vkey + "\n")
    os.chmod(public, 0o644)
    stdout.print(f"signing key: {escape(str(key_file))} (0600); public key: {escape(str(public))}")
    typer.echo(vkey)
    stdout.print(
        f"set LORRY_AUDIT_SIGNING_KEY={escape(str(key_file))}"
        + ("" if origin is None else f" LORRY_AUDIT_CHECKPOINT_ORIGIN={escape(name)}")
        + f" and LORRY_AUDIT_PUBLIC_KEYS={escape(str(public))}"
    )
