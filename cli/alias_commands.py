"""``lorry alias``: set, move, remove, list and trace aliases, and where one pointed at a time."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import render
from cli.common import (
    JsonOption,
    ReasonOption,
    RegistryOption,
    echo_json,
    parse_reference,
    parse_time,
    registry_client,
    stdout,
)

__all__ = ["alias_app"]

alias_app = typer.Typer(
    name="alias", help="Set, move, remove and trace aliases.", no_args_is_help=True
)


def _version_value(version: str) -> str | int:
    return int(version) if version.isdigit() else version


@alias_app.command("set")
def alias_set(
    repository: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME")],
    alias: Annotated[str, typer.Argument(metavar="ALIAS")],
    version: Annotated[
        str, typer.Argument(metavar="VERSION", help="Version number, alias or digest.")
    ],
    reason: ReasonOption = None,
    override_gate: Annotated[
        bool,
        typer.Option(
            "--override-gate",
            help="Admin only, with --reason: move even where an evaluation gate refuses "
            "(recorded as an override in the audit log).",
        ),
    ] = False,
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Point ALIAS at VERSION (creates or moves it)."""
    repo, _ = parse_reference(repository, allow_ref=False)
    with registry_client(registry) as client:
        result = client.set_alias(
            repo, alias, _version_value(version), reason=reason, override_gate=override_gate
        )
    if json_out:
        echo_json(result)
        return
    typer.echo(f"{repo}@{result['name']} → {result['version']} ({result['digest']})")


@alias_app.command("rm")
def alias_rm(
    repository: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME")],
    alias: Annotated[str, typer.Argument(metavar="ALIAS")],
    reason: ReasonOption = None,
    registry: RegistryOption = None,
) -> None:
    """Remove ALIAS."""
    repo, _ = parse_reference(repository, allow_ref=False)
    with registry_client(registry) as client:
        client.delete_alias(repo, alias, reason=reason)
    typer.echo(f"removed {repo}@{alias}")


@alias_app.command("ls")
def alias_ls(
    repository: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME")],
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """List the aliases of a repository."""
    repo, _ = parse_reference(repository, allow_ref=False)
    with registry_client(registry) as client:
        page = client.list_aliases(repo)
    if json_out:
        echo_json(page)
        return
    stdout.print(render.aliases_table(page["items"], repo))


@alias_app.command("history")
def alias_history(
    repository: Annotated[str, typer.Argument(metavar="NAMESPACE/NAME")],
    alias: Annotated[str, typer.Argument(metavar="ALIAS")],
    json_out: JsonOption = False,
    registry: RegistryOption = None,
) -> None:
    """Every move of ALIAS, oldest first: from which version to which, who, when, why."""
    repo, _ = parse_reference(repository, allow_ref=False)
    with registry_client(registry) as client:
        page = client.alias_history(repo, alias)
    if json_out:
        echo_json(page)
        return
    stdout.print(render.alias_history_table(page["items"], f"history of {repo}@{alias}"))


@alias_app.command("at")
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
